"""Augmentations: DynMix config strings, the op table, DynamicMixup (PIL), the papers' baselines, previews.

* :mod:`~timm_dynmix.augment.spec`: :class:`AugSpec`, an ``--aug`` string of any family parsed and validated once
  (:func:`create_aug_spec`: family, typed config, views, device); what the layers below take;
* :mod:`~timm_dynmix.augment.config`: ``dynmix-m3-d2-...`` strings <-> :class:`DynMixConfig` (every key, field and
  allowed range named in errors; ``format(parse(s))`` round-trips);
* :mod:`~timm_dynmix.augment.ops`: the ops and their level -> parameter formulas (pure arithmetic shared with the
  batched path);
* :mod:`~timm_dynmix.augment.dynmix`: :class:`DynamicMixup` (chains, mixing, the clean-image blend);
* :mod:`~timm_dynmix.augment.batched`: :class:`DynamicMixupBatch`, the same ops on uint8/float batches on any device;
* :mod:`~timm_dynmix.augment.augmix_batch`: :class:`AugMixBatch`, the official AugMix on batches, per-sample draws;
* :mod:`~timm_dynmix.augment.baselines`: AugMix and AutoAugment* as the papers ran them;
* :mod:`~timm_dynmix.augment.prime`: :class:`PrimeBatch`, PRIME (Modas et al., 2022) on batches, per-sample draws,
  and its ``prime-...`` config strings (:class:`PrimeConfig`, :func:`parse_prime_config`);
* :mod:`~timm_dynmix.augment.timm_aug`: strict checks of timm's own strings (``augmix-m3-w3``, ``rand-m9``, ``v0``);
* :mod:`~timm_dynmix.augment.preview`: a grid of views of an image, to check a config.

The submodules are imported on use; this package imports nothing heavy.
"""
