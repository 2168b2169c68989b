"""A transformers image classifier trained like a timm model: ``forward(pixel_values) -> logits``.

:func:`create_transformers_model` builds it (from a Hub id, a cached or local checkpoint, or a local folder holding
only a ``config.json``) with the classifier resized to the dataset's classes, and the ``pretrained_cfg`` (input
size, normalization from the image processor) that training and saving use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

__all__ = ["TransformersClassifier", "create_transformers_model"]

logger = logging.getLogger(__name__)


class TransformersClassifier(nn.Module):
    """Wrap a transformers image classifier so that ``forward(pixel_values) -> logits`` like a timm model."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf_model = hf_model
        self.num_classes = int(cast(Any, hf_model).config.num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hf_model(pixel_values=x).logits


def create_transformers_model(ref: str, num_classes: int, label_names: Sequence[str],
                              input_size: int | None = None) -> tuple[TransformersClassifier, dict[str, Any]]:
    """A :class:`TransformersClassifier` for ``num_classes`` classes and its ``pretrained_cfg``.

    Args:
        ref: A Hub repo id or a local folder (weights, or only a ``config.json`` for a model from scratch).
        num_classes: Classes of the training data; the classifier is resized to them.
        label_names: One name per class (the model's ``id2label``).
        input_size: Training image size; default: the model config's ``image_size`` (else 224).

    Returns:
        The wrapped model and ``{"input_size", "mean", "std", "crop_pct", "interpolation", "num_classes"}`` (mean and
        std from the image processor, ImageNet's when there is none).

    Raises:
        ValueError: if ``ref`` cannot be loaded (not a local folder, not cached, or the Hub unreachable).
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    path = Path(ref)
    id2label = dict(enumerate(label_names))
    label2id = {v: k for k, v in id2label.items()}
    try:
        has_weights = path.is_dir() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin")))
        if path.is_dir() and not has_weights:
            config = AutoConfig.from_pretrained(ref, num_labels=num_classes, id2label=id2label, label2id=label2id)
            hf_model = AutoModelForImageClassification.from_config(config)
        else:
            hf_model = AutoModelForImageClassification.from_pretrained(
                ref, num_labels=num_classes, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)
    except OSError as e:
        raise ValueError(f"cannot load transformers model {ref!r} (not a local folder, and not in the cache or the "
                         f"Hub unreachable): {e}") from None
    mean, std = tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    try:
        proc = AutoImageProcessor.from_pretrained(ref)
        mean, std = tuple(proc.image_mean), tuple(proc.image_std)
    except (OSError, ValueError, TypeError, AttributeError):
        logger.info("no image processor for %s: using ImageNet normalization", ref)
    size = input_size or int(getattr(hf_model.config, "image_size", 224))
    pcfg = {"input_size": (3, size, size), "mean": mean, "std": std, "crop_pct": 1.0 if size <= 64 else 0.875,
            "interpolation": "bilinear", "num_classes": num_classes}
    return TransformersClassifier(hf_model), pcfg
