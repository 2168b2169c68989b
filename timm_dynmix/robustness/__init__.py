"""Corruption robustness: corruptions, make-c, benchmark readers, evaluation, metrics and reports.

* :mod:`~timm_dynmix.robustness.corruptions`: the 15 + 4 ImageNet-C / CIFAR-10-C corruptions, as published;
* :mod:`~timm_dynmix.robustness.corruptions_cbar`: the 10 CIFAR-10-C-bar corruptions (Mintun et al., 2021);
* :mod:`~timm_dynmix.robustness.make_c`: build a -C or -C-bar benchmark from a dataset;
* :mod:`~timm_dynmix.robustness.readers`: read -C (npy or folder), -3DCC and -P benchmarks;
* :mod:`~timm_dynmix.robustness.evaluate`: run a model over a benchmark (:mod:`~timm_dynmix.robustness.results`
  holds what it returns);
* :mod:`~timm_dynmix.robustness.metrics`: mCE, relative mCE, calibration, flip probability, top-5 distance;
* :mod:`~timm_dynmix.robustness.report`: report.json / report.md / plots, and comparisons.

The submodules are imported on use; this package imports nothing heavy.
"""
