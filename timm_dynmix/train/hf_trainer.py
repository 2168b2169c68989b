"""DynMix + JSD in ``transformers.Trainer``: a data collator and a ``compute_loss_func``.

Usage::

    from transformers import Trainer, TrainingArguments
    from timm_dynmix import DynMixDataset, create_transform
    from timm_dynmix.train.hf_trainer import DynMixCollator, jsd_compute_loss  # or timm_dynmix.hf_trainer

    views = create_transform(224, is_training=True, aug="dynmix-oimagenet", mean=proc.image_mean, std=proc.image_std)
    train_set = DynMixDataset(hf_train_split, views, seed=0, image_key="image", label_key="label")
    trainer = Trainer(model=model, args=TrainingArguments(..., remove_unused_columns=False),
                      train_dataset=train_set, eval_dataset=eval_set, data_collator=DynMixCollator(),
                      compute_loss_func=jsd_compute_loss(num_splits=3, weight=12.0))

The collator stacks the views split-major (all clean, then all mix_1, ...) into ``pixel_values`` and passes the
labels once per image; the loss is :class:`timm_dynmix.JsdLoss` on the logits (cross entropy on the clean split +
weight * JS of all splits). Batches of single images (evaluation) get plain cross entropy. ``DynMixDataset`` keys
its draws on the sample index and its ``epoch`` attribute; Trainer does not call ``set_epoch`` on datasets, so add
``EpochCallback(train_set)`` to ``callbacks`` for new draws every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from timm_dynmix.data.views import collate_splits
from timm_dynmix.loss import JsdLoss

__all__ = ["DynMixCollator", "jsd_compute_loss", "EpochCallback"]


class DynMixCollator:
    """Collate ``((clean, mix_1, ...), label)`` items (or ``(image, label)`` / dict items) for transformers models.

    Returns ``{"pixel_values": (N*B, C, H, W), "labels": (B,)}``; items with a single view give ``(B, C, H, W)``.

    Args:
        image_key: Key of the image in dict items.
        label_key: Key of the label in dict items.
    """

    def __init__(self, image_key: str = "pixel_values", label_key: str = "labels"):
        self.image_key = image_key
        self.label_key = label_key

    def __call__(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        if len(batch) == 0:
            raise ValueError("cannot collate an empty batch")
        items = [(b[self.image_key], b[self.label_key]) if isinstance(b, Mapping) else (b[0], b[1]) for b in batch]
        if isinstance(items[0][0], (tuple, list)):
            x, y = collate_splits(items)
            return {"pixel_values": x, "labels": y[: len(items)]}
        x = torch.stack([torch.as_tensor(img) for img, _ in items])
        return {"pixel_values": x, "labels": torch.as_tensor([int(label) for _, label in items])}


def jsd_compute_loss(num_splits: int = 3, weight: float = 12.0, smoothing: float = 0.0) -> Callable[..., torch.Tensor]:
    """A ``compute_loss_func`` for ``transformers.Trainer``: :class:`JsdLoss` on split batches; on batches of one
    view per image (evaluation) the same object's clean-split loss (cross entropy with ``smoothing``)."""
    jsd = JsdLoss(num_splits=num_splits, weight=weight, smoothing=smoothing)

    def compute_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs.logits
        if labels is None:
            raise ValueError("jsd_compute_loss needs labels: keep the 'labels' key in the collated batch")
        if logits.shape[0] == labels.shape[0]:  # one view per image (evaluation): the clean-split loss alone
            return jsd.base_loss(logits.float(), labels)
        return jsd(logits, labels)

    return compute_loss


class EpochCallback(TrainerCallback):
    """A ``TrainerCallback`` that calls ``dataset.set_epoch(epoch)`` at the start of every epoch.

    Args:
        dataset: A dataset with ``set_epoch(epoch)``, e.g. :class:`timm_dynmix.DynMixDataset`.

    Raises:
        TypeError: if ``dataset`` has no ``set_epoch`` method.
    """

    def __init__(self, dataset: Any):
        if not callable(getattr(dataset, "set_epoch", None)):
            raise TypeError(f"EpochCallback needs a dataset with set_epoch(epoch) (such as DynMixDataset), got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(int(state.epoch or 0))
