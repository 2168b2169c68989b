"""timm-dynmix: Dynamic Mixup (DynMix) as a first-class citizen of timm and Hugging Face.

Public API::

    from timm_dynmix import DynamicMixup, DynMixConfig, JsdLoss, create_transform, DynMixDataset, collate_splits
    from timm_dynmix import create_model, save_pretrained, push_to_hub   # Hugging Face Hub
    from timm_dynmix import DynamicMixupBatch   # the same augmentation on uint8/float batches, on any device
    from timm_dynmix import AugMix, AutoAugmentStar, RandomAutoAugmentStar   # the papers' baselines
    from timm_dynmix import corrupt, make_c, evaluate_corruptions, build_report, write_report   # robustness
"""

__version__ = "0.1.0"

from timm_dynmix import models  # registers the CIFAR architectures (wrn40_2, ...) in timm's registry
from timm_dynmix.baselines import (
    AugMix,
    AugMixConfig,
    AutoAugmentStar,
    RandomAutoAugmentStar,
    format_augmix_config,
    parse_augmix_config,
)
from timm_dynmix.batched import BatchParams, DynamicMixupBatch
from timm_dynmix.benchmarks import read_folder_c, read_npy_c, read_perturbations, subset_indices
from timm_dynmix.card import EvalReport, load_eval_report, render_card, write_card
from timm_dynmix.config import DynMixConfig, format_config, parse_config
from timm_dynmix.corruptions import ALL_CORRUPTIONS, CORRUPTION_GROUPS, CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt
from timm_dynmix.data import DynMixDataset, DynMixViews, collate_splits, create_transform, is_dynmix
from timm_dynmix.evaluate import evaluate_corruptions, evaluate_perturbations, load_benchmark, load_eval_model
from timm_dynmix.hub import HubError, create_model, push_to_hub, save_pretrained
from timm_dynmix.loss import JsdLoss, TimmJsdCrossEntropy, js_divergence
from timm_dynmix.make_c import make_c
from timm_dynmix.metrics import (
    ALEXNET_ERRORS,
    expected_calibration_error,
    flip_probability,
    mce,
    relative_mce,
    rms_calibration_error,
    top5_distance,
)
from timm_dynmix.ops import OP_SETS, OPS, Op, get_op, resolve_ops
from timm_dynmix.report import build_report, compare_reports, write_report
from timm_dynmix.rng import derive_seed, sample_rng, seeded
from timm_dynmix.timm_plugin import register_timm, unregister_timm
from timm_dynmix.transforms import DynamicMixup, MixParams, mix

__all__ = [
    "__version__",
    "DynMixConfig", "parse_config", "format_config",
    "DynamicMixup", "MixParams", "mix",
    "DynamicMixupBatch", "BatchParams",
    "AugMix", "AugMixConfig", "parse_augmix_config", "format_augmix_config", "AutoAugmentStar", "RandomAutoAugmentStar",
    "Op", "OPS", "OP_SETS", "get_op", "resolve_ops",
    "DynMixViews", "DynMixDataset", "collate_splits", "create_transform", "is_dynmix",
    "JsdLoss", "TimmJsdCrossEntropy", "js_divergence",
    "register_timm", "unregister_timm",
    "derive_seed", "sample_rng", "seeded",
    "models",
    "launch_timm_train", "rewrite_timm_train_args",
    "create_model", "save_pretrained", "push_to_hub", "HubError",
    "EvalReport", "load_eval_report", "render_card", "write_card",
    "CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "CORRUPTION_GROUPS", "corrupt", "make_c",
    "read_npy_c", "read_folder_c", "read_perturbations", "subset_indices",
    "load_benchmark", "load_eval_model", "evaluate_corruptions", "evaluate_perturbations",
    "build_report", "write_report", "compare_reports",
    "ALEXNET_ERRORS", "rms_calibration_error", "expected_calibration_error", "mce", "relative_mce",
    "flip_probability", "top5_distance",
]

# the timm train.py launcher is imported on first use, so that `python -m timm_dynmix.timm_train` (what torchrun -m
# runs) does not find the module already imported by the package
_LAZY = {"launch_timm_train": "launch", "rewrite_timm_train_args": "rewrite_args"}


def __getattr__(name: str):
    if name in _LAZY:
        from timm_dynmix import timm_train

        return getattr(timm_train, _LAZY[name])
    raise AttributeError(f"module 'timm_dynmix' has no attribute {name!r}")
