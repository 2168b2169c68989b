"""``timm-dynmix train``: train a classifier with DynMix + JSD or a timm baseline (as examples/train.py).

The flags (one per :class:`~timm_dynmix.train.config.TrainConfig` field) and the runner are defined in
:mod:`timm_dynmix.train.command`, below the CLI; this module names them for ``timm-dynmix``'s command table.
"""

from __future__ import annotations

from timm_dynmix.train.command import add_arguments, run

__all__ = ["add_arguments", "run"]
