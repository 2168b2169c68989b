"""timm-dynmix: Dynamic Mixup (DynMix) as a first-class citizen of timm and Hugging Face.

Public API::

    from timm_dynmix import DynamicMixup, DynMixConfig, JsdLoss, create_transform, DynMixDataset, collate_splits
    from timm_dynmix import DynamicMixupBatch   # the same augmentation on uint8/float batches, on any device
"""

__version__ = "0.1.0"

from timm_dynmix.batched import BatchParams, DynamicMixupBatch
from timm_dynmix.config import DynMixConfig, format_config, parse_config
from timm_dynmix.data import DynMixDataset, DynMixViews, collate_splits, create_transform, is_dynmix
from timm_dynmix.loss import JsdLoss, js_divergence
from timm_dynmix.ops import OP_SETS, OPS, Op, get_op, resolve_ops
from timm_dynmix.rng import derive_seed, sample_rng, seeded
from timm_dynmix.timm_plugin import register_timm, unregister_timm
from timm_dynmix.transforms import DynamicMixup, MixParams, mix

__all__ = [
    "__version__",
    "DynMixConfig", "parse_config", "format_config",
    "DynamicMixup", "MixParams", "mix",
    "DynamicMixupBatch", "BatchParams",
    "Op", "OPS", "OP_SETS", "get_op", "resolve_ops",
    "DynMixViews", "DynMixDataset", "collate_splits", "create_transform", "is_dynmix",
    "JsdLoss", "js_divergence",
    "register_timm", "unregister_timm",
    "derive_seed", "sample_rng", "seeded",
]
