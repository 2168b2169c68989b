"""The in-memory data path for small images: a split decoded once into a uint8 tensor, cropped and flipped in batches.

For CIFAR-sized data the DataLoader's per-image PIL work costs more than the model; :class:`MemoryImages` decodes a
split once (``(N, 3, H, W)`` uint8) and :func:`crop_flip_batch` makes the training crops of a whole batch in one
gather, seeded per ``(seed, epoch, batch, rank)`` so that a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from timm_dynmix.data.datasets import DecodedImageDataset
from timm_dynmix.rng import derive_seed

__all__ = ["MemoryImages", "crop_flip_batch"]

logger = logging.getLogger(__name__)


def crop_flip_batch(x: torch.Tensor, padding: int, generator: torch.Generator, hflip: float = 0.5) -> torch.Tensor:
    """Random crops with zero padding and horizontal flips of a batch, in one gather (same dtype, same shape).

    The batched counterpart of ``RandomCrop(size, padding) + RandomHorizontalFlip(hflip)`` of the loader path:
    image ``i`` is cut at offsets ``(dy_i, dx_i)`` drawn uniformly in ``[0, 2 * padding]`` from the zero-padded
    image and mirrored with probability ``hflip``; all draws come from ``generator``.

    Args:
        x: (B, C, H, W) images, any dtype.
        padding: Zero padding on every side, >= 0.
        generator: Source of the offsets and flips (on ``x``'s device).
        hflip: Flip probability in [0, 1].

    Raises:
        ValueError: if ``x`` is not 4-D, ``padding`` is negative or ``hflip`` is outside [0, 1].
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"crop_flip_batch needs a (B, C, H, W) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip must be in [0, 1], got {hflip!r}")
    b, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    flip = torch.rand(b, generator=generator, device=dev) < hflip
    padded = nn.functional.pad(x, (padding,) * 4) if padding else x
    wp = w + 2 * padding
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    rows = torch.arange(h, device=dev)[None, :] + dy[:, None]
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


class MemoryImages:
    """A split decoded once into a uint8 tensor ``(N, 3, H, W)`` and int64 labels (the in-memory data path)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    @classmethod
    def decode(cls, ds: DecodedImageDataset, size: int) -> MemoryImages | None:
        """Decode every image of ``ds`` (fallbacks included); None if one is not ``size`` x ``size`` pixels."""
        n = len(ds)
        images = torch.empty((n, size, size, 3), dtype=torch.uint8)
        labels = torch.empty(n, dtype=torch.int64)
        pixels = images.numpy()  # a view: the decoded pixels are written in place
        for i in range(n):
            img, label = ds[i]
            if img.size != (size, size):
                logger.info("in-memory data: image %d is %dx%d, not %dx%d; using the DataLoader path", i,
                            *img.size, size, size)
                return None
            pixels[i] = np.asarray(img, dtype=np.uint8)
            labels[i] = label
        return cls(images.permute(0, 3, 1, 2).contiguous(), labels)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, sampler: Any, epoch: int, start_batch: int, padding: int, seed: int, rank: int, *,
                with_indices: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
        """This rank's training batches of ``epoch`` from ``start_batch`` on: uint8 crops + flips and labels.

        ``sampler`` is an :class:`~timm_dynmix.data.sampler.EpochShardSampler` (its order and batch size are used).
        With ``with_indices`` every batch also carries the dataset index of each image (int64), the key of
        per-sample seeded augmentations in the step: ``(x, y, indices)``.

        The crops of batch ``k`` are drawn from ``derive_seed(seed, epoch, k, rank)``, so a resumed run repeats
        an uninterrupted one.
        """
        order = torch.tensor(sampler.indices(epoch), dtype=torch.int64)
        bs = sampler.batch_size
        for k in range(start_batch, sampler.batches_per_epoch):
            idx = order[k * bs:(k + 1) * bs]
            gen = torch.Generator().manual_seed(derive_seed(seed, epoch, k, rank, split="memory-crop"))
            x = crop_flip_batch(self.images[idx], padding, gen)
            yield (x, self.labels[idx], idx) if with_indices else (x, self.labels[idx])
