"""timm-dynmix: Dynamic Mixup (DynMix) as a first-class citizen of timm and Hugging Face.

Public API::

    from timm_dynmix import DynamicMixup, DynMixConfig, JsdLoss, create_transform, DynMixDataset, collate_splits
    from timm_dynmix import create_model, save_pretrained, push_to_hub   # Hugging Face Hub
    from timm_dynmix import DynamicMixupBatch   # the same augmentation on uint8/float batches, on any device
    from timm_dynmix import AugMixBatch   # the official AugMix on batches, per-sample draws
    from timm_dynmix import AugMix, AutoAugmentStar, RandomAutoAugmentStar   # the papers' baselines
    from timm_dynmix import PrimeBatch, PrimeConfig, parse_prime_config   # PRIME on batches, on any device
    from timm_dynmix import AugSpec, create_aug_spec   # an --aug string, parsed and validated once
    from timm_dynmix import corrupt, make_c, evaluate_corruptions, build_report, write_report   # robustness

The names are loaded on first use (``import timm_dynmix`` itself loads neither torch nor timm). Our timm
architectures (``wrn40_2``, ...) are registered as soon as timm is imported, before or after timm_dynmix, so
``import timm, timm_dynmix; timm.create_model("wrn40_2")`` works. See docs/architecture.md for the layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timm_dynmix import _lazy, _moved, _register
from timm_dynmix.version import __version__

# public name -> the module that defines it (imported on first access)
_EXPORTS = _lazy.exports({
    "timm_dynmix.augment.config": ("DynMixConfig", "parse_config", "format_config", "is_dynmix"),
    "timm_dynmix.augment.dynmix": ("DynamicMixup", "MixParams", "mix"),
    "timm_dynmix.augment.batched": ("DynamicMixupBatch", "BatchParams"),
    "timm_dynmix.augment.augmix_batch": ("AugMixBatch", "AugMixBatchParams"),
    "timm_dynmix.augment.baselines": ("AugMix", "AugMixConfig", "parse_augmix_config", "format_augmix_config",
                                      "AutoAugmentStar", "RandomAutoAugmentStar"),
    "timm_dynmix.augment.prime": ("PrimeBatch", "PrimeConfig", "PrimeParams", "parse_prime_config",
                                  "format_prime_config"),
    "timm_dynmix.augment.ops": ("Op", "OPS", "OP_SETS", "get_op", "resolve_ops"),
    "timm_dynmix.augment.timm_aug": ("validate_timm_aug",),
    "timm_dynmix.augment.spec": ("AugSpec", "create_aug_spec"),
    "timm_dynmix.data.views": ("DynMixViews", "DynMixDataset", "collate_splits"),
    "timm_dynmix.data.transforms_factory": ("create_transform",),
    "timm_dynmix.loss": ("JsdLoss", "TimmJsdCrossEntropy", "js_divergence"),
    "timm_dynmix.integrations.timm": ("register_timm", "unregister_timm"),
    "timm_dynmix.rng": ("derive_seed", "sample_rng", "seeded"),
    "timm_dynmix.hub.save": ("save_pretrained",),
    "timm_dynmix.models.load": ("create_model", "check_weights_file"),
    "timm_dynmix.hub.push": ("push_to_hub",),
    "timm_dynmix.errors": ("HubError", "WeightsError"),
    "timm_dynmix.hub.card": ("EvalReport", "load_eval_report", "render_card", "write_card"),
    "timm_dynmix.robustness.corruptions": ("CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "CORRUPTION_GROUPS",
                                           "corrupt"),
    "timm_dynmix.robustness.corruptions_cbar": ("CBAR_CORRUPTIONS", "corrupt_cbar"),
    "timm_dynmix.robustness.make_c": ("make_c",),
    "timm_dynmix.robustness.readers": ("read_npy_c", "read_folder_c", "read_perturbations"),
    "timm_dynmix.data.sampler": ("subset_indices",),
    "timm_dynmix.robustness.evaluate": ("load_benchmark", "load_eval_model", "evaluate_corruptions",
                                        "evaluate_perturbations"),
    "timm_dynmix.robustness.report": ("build_report", "write_report", "compare_reports"),
    "timm_dynmix.robustness.metrics": ("ALEXNET_ERRORS", "rms_calibration_error", "expected_calibration_error", "mce",
                                       "relative_mce", "flip_probability", "top5_distance"),
})
# renamed on the way out: public name -> module:name there
_EXPORTS.update(launch_timm_train="timm_dynmix.integrations.timm_train:launch",
                rewrite_timm_train_args="timm_dynmix.integrations.timm_train:rewrite_args")

__all__ = [
    "__version__",
    "DynMixConfig", "parse_config", "format_config",
    "DynamicMixup", "MixParams", "mix",
    "DynamicMixupBatch", "BatchParams", "AugMixBatch", "AugMixBatchParams",
    "AugMix", "AugMixConfig", "parse_augmix_config", "format_augmix_config", "AutoAugmentStar", "RandomAutoAugmentStar",
    "PrimeBatch", "PrimeConfig", "PrimeParams", "parse_prime_config", "format_prime_config",
    "Op", "OPS", "OP_SETS", "get_op", "resolve_ops", "validate_timm_aug", "AugSpec", "create_aug_spec",
    "DynMixViews", "DynMixDataset", "collate_splits", "create_transform", "is_dynmix",
    "JsdLoss", "TimmJsdCrossEntropy", "js_divergence",
    "register_timm", "unregister_timm",
    "derive_seed", "sample_rng", "seeded",
    "models",
    "launch_timm_train", "rewrite_timm_train_args",
    "create_model", "save_pretrained", "push_to_hub", "HubError", "WeightsError", "check_weights_file",
    "EvalReport", "load_eval_report", "render_card", "write_card",
    "CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "CORRUPTION_GROUPS", "corrupt", "make_c",
    "CBAR_CORRUPTIONS", "corrupt_cbar",
    "read_npy_c", "read_folder_c", "read_perturbations", "subset_indices",
    "load_benchmark", "load_eval_model", "evaluate_corruptions", "evaluate_perturbations",
    "build_report", "write_report", "compare_reports",
    "ALEXNET_ERRORS", "rms_calibration_error", "expected_calibration_error", "mce", "relative_mce",
    "flip_probability", "top5_distance",
]


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS, submodules=("models",))  # models: the CIFAR architectures

_moved.install()
_register.install()

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from timm_dynmix import models
    from timm_dynmix.augment.augmix_batch import AugMixBatch, AugMixBatchParams
    from timm_dynmix.augment.baselines import (
        AugMix,
        AugMixConfig,
        AutoAugmentStar,
        RandomAutoAugmentStar,
        format_augmix_config,
        parse_augmix_config,
    )
    from timm_dynmix.augment.batched import BatchParams, DynamicMixupBatch
    from timm_dynmix.augment.config import DynMixConfig, format_config, is_dynmix, parse_config
    from timm_dynmix.augment.dynmix import DynamicMixup, MixParams, mix
    from timm_dynmix.augment.ops import OP_SETS, OPS, Op, get_op, resolve_ops
    from timm_dynmix.augment.prime import (
        PrimeBatch,
        PrimeConfig,
        PrimeParams,
        format_prime_config,
        parse_prime_config,
    )
    from timm_dynmix.augment.spec import AugSpec, create_aug_spec
    from timm_dynmix.augment.timm_aug import validate_timm_aug
    from timm_dynmix.data.sampler import subset_indices
    from timm_dynmix.data.transforms_factory import create_transform
    from timm_dynmix.data.views import DynMixDataset, DynMixViews, collate_splits
    from timm_dynmix.errors import HubError, WeightsError
    from timm_dynmix.hub.card import EvalReport, load_eval_report, render_card, write_card
    from timm_dynmix.hub.push import push_to_hub
    from timm_dynmix.hub.save import save_pretrained
    from timm_dynmix.integrations.timm import register_timm, unregister_timm
    from timm_dynmix.integrations.timm_train import launch as launch_timm_train
    from timm_dynmix.integrations.timm_train import rewrite_args as rewrite_timm_train_args
    from timm_dynmix.loss import JsdLoss, TimmJsdCrossEntropy, js_divergence
    from timm_dynmix.models.load import check_weights_file, create_model
    from timm_dynmix.rng import derive_seed, sample_rng, seeded
    from timm_dynmix.robustness.corruptions import (
        ALL_CORRUPTIONS,
        CORRUPTION_GROUPS,
        CORRUPTIONS,
        EXTRA_CORRUPTIONS,
        corrupt,
    )
    from timm_dynmix.robustness.corruptions_cbar import CBAR_CORRUPTIONS, corrupt_cbar
    from timm_dynmix.robustness.evaluate import (
        evaluate_corruptions,
        evaluate_perturbations,
        load_benchmark,
        load_eval_model,
    )
    from timm_dynmix.robustness.make_c import make_c
    from timm_dynmix.robustness.metrics import (
        ALEXNET_ERRORS,
        expected_calibration_error,
        flip_probability,
        mce,
        relative_mce,
        rms_calibration_error,
        top5_distance,
    )
    from timm_dynmix.robustness.readers import read_folder_c, read_npy_c, read_perturbations
    from timm_dynmix.robustness.report import build_report, compare_reports, write_report
