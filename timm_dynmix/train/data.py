"""The training data of a run: transforms, datasets, sampler, loaders or the in-memory path, from a config.

:func:`prepare_data` turns a :class:`~timm_dynmix.train.config.TrainConfig`, the loaded
:class:`~timm_dynmix.data.datasets.ImageData` and the model's ``pretrained_cfg`` into a :class:`TrainData`: what the
loop iterates (``batches(epoch, start_batch)``) and evaluates on (``eval_dl``). It also settles the options left on
automatic (DynMix op set for the image size, channels-last, in-memory data, where DynMix runs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch
from torchvision import transforms

from timm_dynmix.data.datasets import DecodedImageDataset, DecodedIterableDataset, ImageData
from timm_dynmix.data.memory import MemoryImages
from timm_dynmix.data.sampler import EpochShardSampler, subset_indices
from timm_dynmix.data.transforms_factory import create_transform
from timm_dynmix.data.views import DynMixDataset, collate_splits
from timm_dynmix.runtime import has_accelerator, usable_cpus
from timm_dynmix.train.config import TrainConfig

__all__ = ["TrainData", "prepare_data", "train_transform"]

logger = logging.getLogger(__name__)

# the in-memory data path: images up to this size, training sets up to this many bytes as uint8
_MEMORY_MAX_SIZE = 64
_MEMORY_MAX_BYTES = 2 << 30


@dataclass
class TrainData:
    """What a run trains and evaluates on (built by :func:`prepare_data`).

    Attributes:
        data: The loaded dataset (splits, columns, class names, provenance).
        size: Training image size (pixels, square).
        mean: Normalization mean of the model.
        std: Normalization std of the model.
        num_splits: Views per image the loss sees (1 + mixes with JSD, else 1).
        loader_views: Views per image a loader item holds (1 when the step makes the views).
        decoded_train: The decoded training split (counts the fallback images).
        train_ds: The training dataset (views and their seeded transforms).
        sampler: The per-epoch seeded, rank-sharded sampler (None for a streamed split).
        memory: The training split in memory (None: the DataLoader path).
        train_dl: The training DataLoader (None on the in-memory path).
        eval_dl: The evaluation DataLoader (None when the dataset has no eval split).
        steps_per_epoch: Batches per epoch and process.
        padding: Crop padding of the in-memory path.
        seed: The run's seed.
        rank: This process's index.
    """

    data: ImageData
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_splits: int
    loader_views: int
    decoded_train: Any
    train_ds: Any
    sampler: EpochShardSampler | None
    memory: MemoryImages | None
    train_dl: Any
    eval_dl: Any
    steps_per_epoch: int
    padding: int
    seed: int
    rank: int

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Seed the sampler's shuffle and the dataset's augmentation draws for ``epoch``."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch, start_batch)
        self.train_ds.set_epoch(epoch)

    def batches(self, epoch: int, start_batch: int = 0, *,
                with_indices: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
        """This process's training batches of ``epoch`` from ``start_batch`` on (call :meth:`set_epoch` first).

        ``(x, y)`` pairs; with ``with_indices`` the in-memory path yields ``(x, y, dataset indices)`` (what the
        step's per-sample seeded augmentations key on); the DataLoader path always yields pairs.
        """
        if self.memory is not None:
            return self.memory.batches(self.sampler, epoch, start_batch, self.padding, self.seed, self.rank,
                                       with_indices=with_indices)
        return iter(self.train_dl)

    def training_images(self, indices: torch.Tensor) -> torch.Tensor:
        """The training images at ``indices`` as a uint8 ``(n, C, size, size)`` batch, the same on every data path.

        From the in-memory copy when there is one, else decoded from the training split (images of another size
        are resized and centre-cropped to ``size``, as the evaluation transform does): both give the same pixels
        for the same indices (tested), so data-dependent initialisation does not depend on the data path.

        Raises:
            ValueError: on a streamed training split (it has no indices).
        """
        if self.memory is not None:
            return self.memory.images[indices]
        if self.sampler is None:
            raise ValueError("data-dependent initialisation (--stem whitened) needs an indexable training split, "
                             "not a streamed one (use --stem learned)")
        import numpy as np

        fit = transforms.Compose([transforms.Resize(self.size), transforms.CenterCrop(self.size)])
        out = torch.empty((len(indices), 3, self.size, self.size), dtype=torch.uint8)
        for row, i in enumerate(indices.tolist()):
            img, _ = self.decoded_train[i]
            if img.size != (self.size, self.size):
                img = fit(img)
            out[row] = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        return out

    @property
    def data_path(self) -> str:
        """How the training batches are made: ``memory`` (decoded once, cropped in the step), ``loader``
        (DataLoader workers) or ``stream`` (a streamed split)."""
        if self.memory is not None:
            return "memory"
        return "stream" if self.sampler is None else "loader"

    def fallback_images(self, accelerator: Any) -> int:
        """Undecodable training images replaced by the fallback sample, summed over processes."""
        count = torch.tensor([self.decoded_train.fallback_count], device=accelerator.device)
        return int(accelerator.reduce(count, reduction="sum").item())


def prepare_data(cfg: TrainConfig, data: ImageData, pcfg: dict[str, Any],
                 accelerator: Any) -> tuple[TrainConfig, TrainData]:
    """Build the training data of ``cfg`` for a model with ``pcfg`` (input size, mean, std).

    Returns:
        ``cfg`` with the automatic options settled (what the run records) and the :class:`TrainData`.

    Raises:
        ValueError: if ``--data-in-memory`` was asked for and cannot run, or a streamed split has no known length
            and no ``--max-steps``.
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    size = pcfg["input_size"][-1]
    spec = cfg.spec.with_image_size(size)
    if spec is not cfg.spec:  # a DynMix string without an op set: the set for the image size, recorded as run
        cfg = dataclasses.replace(cfg, aug=spec.source, _aug_spec=spec)
    mean, std = tuple(pcfg["mean"]), tuple(pcfg["std"])
    memory_asked = cfg.data_in_memory
    cfg = _resolve_speed_options(cfg, data, size, accelerator)
    train_tf, loader_views = train_transform(cfg, size, mean, std)
    num_splits = 1 + cfg.mixes if (cfg.use_jsd and cfg.has_views) else 1
    eval_tf = create_transform(size, is_training=False, mean=mean, std=std)

    if data.streaming:
        train_stream = DecodedIterableDataset(data.train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer),
                                              data.image_column, data.label_column, rank=rank, world_size=world)
        wrapper = DynMixDataset([], train_tf, num_splits=num_splits, seed=cfg.seed)
        train_ds: Any = _StreamedSplits(train_stream, wrapper)
        decoded_train: Any = train_stream
        sampler = None
    else:
        decoded_train = DecodedImageDataset(_subset(data.train, cfg.max_train_samples, cfg.seed), data.image_column,
                                            data.label_column)
        train_ds = DynMixDataset(decoded_train, train_tf, num_splits=num_splits, seed=cfg.seed)
        sampler = EpochShardSampler(len(train_ds), cfg.batch_size, cfg.seed, rank, world)
    memory = None
    if cfg.data_in_memory:
        decode_start = time.time()
        memory = MemoryImages.decode(decoded_train, size)
        if memory is None and memory_asked:
            raise ValueError(f"--data-in-memory needs every training image at {size}x{size} px; some differ "
                             f"(use --no-data-in-memory)")
        if memory is None:
            cfg = dataclasses.replace(cfg, data_in_memory=False)
            decoded_train._fallback.counts.zero_()  # the DataLoader decodes (and counts) every image again
        else:
            logger.info("decoded %d training images into memory in %.1f s", len(memory), time.time() - decode_start)
    workers = cfg.num_workers if cfg.num_workers is not None else min(4, max(1, usable_cpus() // world - 1))
    collate = collate_splits if loader_views > 1 else None
    train_dl = None if memory is not None else torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers, collate_fn=collate, drop_last=True,
        pin_memory=has_accelerator())
    if data.eval is None and accelerator.is_main_process:
        logger.warning(no_eval_split_note(data))
    eval_dl = _eval_loader(cfg, data, size, eval_tf, workers, memory is not None)
    steps_per_epoch = sampler.batches_per_epoch if sampler is not None else _stream_steps(data, cfg, world)
    padding = size // 8 if cfg.crop_padding is None else cfg.crop_padding
    return cfg, TrainData(data=data, size=size, mean=mean, std=std, num_splits=num_splits, loader_views=loader_views,
                          decoded_train=decoded_train, train_ds=train_ds, sampler=sampler, memory=memory,
                          train_dl=train_dl, eval_dl=eval_dl, steps_per_epoch=steps_per_epoch, padding=padding,
                          seed=cfg.seed, rank=rank)


def _eval_loader(cfg: TrainConfig, data: ImageData, size: int, eval_tf: Any, workers: int,
                 in_memory: bool) -> Any:
    """The evaluation DataLoader (None without an eval split): in memory (uint8, normalized in the step) when the
    training split is and every eval image has the model's size, else decoded and transformed per image."""
    if data.eval is None:
        return None
    eval_data = _subset(data.eval, cfg.max_eval_samples, cfg.seed) if not data.streaming else data.eval
    memory_eval = MemoryImages.decode(DecodedImageDataset(eval_data, data.image_column, data.label_column),
                                      size) if in_memory else None
    if memory_eval is not None:  # eval images at the model's size: the eval transform is ToTensor + Normalize
        eval_ds: Any = torch.utils.data.TensorDataset(memory_eval.images, memory_eval.labels)
        return torch.utils.data.DataLoader(eval_ds, batch_size=max(cfg.batch_size, 256))
    eval_ds = DecodedImageDataset(eval_data, data.image_column, data.label_column, transform=eval_tf) \
        if not data.streaming else _EvalStream(eval_data, data, eval_tf)
    return torch.utils.data.DataLoader(eval_ds, batch_size=max(cfg.batch_size, 256), num_workers=workers)


def _subset(ds: Any, n: int | None, seed: int) -> Any:
    """``ds`` itself, or its seeded subset of ``n`` rows (:func:`~timm_dynmix.data.sampler.subset_indices`)."""
    if n is None or n >= len(ds):
        return ds
    return ds.select(subset_indices(len(ds), n, seed).tolist())


class _TrainTransformArgs(TypedDict):
    """The :func:`~timm_dynmix.data.transforms_factory.create_transform` arguments every training transform shares."""

    is_training: bool
    mean: Sequence[float]
    std: Sequence[float]
    crop_padding: int | None


def train_transform(cfg: TrainConfig, size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[Any, int]:
    """The training transform and the number of views each loader item holds.

    DynMix or AugMix with JSD: clean + ``mixes`` views of one crop (split-major after ``collate_splits``). Without
    JSD: one augmented view trained with cross entropy (the paper's "no JSD" ablation for DynMix). With
    ``aug_device == "step"``: uint8 crops only; the step makes the views. Mixup/CutMix act in the step too.
    """
    common: _TrainTransformArgs = {"is_training": True, "mean": mean, "std": std, "crop_padding": cfg.crop_padding}
    spec = cfg.spec  # parsed once, by the config; never the string again
    if cfg.aug_device in ("step", "model"):
        return create_transform(size, aug=None, normalize=False, **common), 1
    if spec.transform_string is None:  # none, mixup, cutmix
        return create_transform(size, aug=None, **common), 1
    if not (spec.has_views and cfg.use_jsd):
        if spec.family == "dynmix":  # DynMixViews always makes the clean view too: compose the stages instead
            base, dynmix, final = create_transform(size, aug=spec, separate=True, **common)
            return transforms.Compose([base, dynmix, final]), 1
        return create_transform(size, aug=spec, **common), 1
    if spec.name == "augmix":  # AugMix stages (official: float views; or timm's), applied per view by DynMixDataset
        return create_transform(size, aug=spec, separate=True, **common), 1 + cfg.mixes
    return create_transform(size, aug=spec, num_mixes=cfg.mixes, **common), 1 + cfg.mixes


def _resolve_speed_options(cfg: TrainConfig, data: ImageData, size: int, accelerator: Any) -> TrainConfig:
    """Fill in the automatic speed options: channels-last, the in-memory data path and the DynMix device.

    * ``channels_last``: on with bf16 autocast on a CPU (oneDNN's fast layout there).
    * ``data_in_memory``: on when :func:`_memory_path_possible` finds nothing against it; an explicit True that
      cannot run is refused.
    * ``aug_device`` ``auto``: the augmentations with a batched version (``STEP_AUGMENTATIONS``: DynMix, the
      official AugMix) run in the step (``step``: measured faster than the DataLoader path on CPU and GPU, and every
      arm of a study then shares one data path); every other augmentation in the loader. ``model`` (the old name)
      is recorded as ``step``.
    """
    updates: dict[str, Any] = {}
    if cfg.channels_last is None:
        updates["channels_last"] = accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16"
    if cfg.aug_device == "auto":
        updates["aug_device"] = cfg.spec.device  # step when the family has a batched version, else loader
    elif cfg.aug_device == "model":
        updates["aug_device"] = "step"
    cfg = dataclasses.replace(cfg, **updates)
    why_not = _memory_path_possible(cfg, data, size)
    if cfg.data_in_memory and why_not:
        raise ValueError(f"--data-in-memory cannot run: {why_not}")
    if cfg.data_in_memory is None:
        if why_not:
            logger.info("data path: DataLoader (%s)", why_not)
        cfg = dataclasses.replace(cfg, data_in_memory=why_not is None)
    return cfg


def _memory_path_possible(cfg: TrainConfig, data: ImageData, size: int) -> str | None:
    """Why the in-memory data path cannot run (None: it can)."""
    if data.streaming:
        return "the dataset is streamed"
    if size > _MEMORY_MAX_SIZE:
        return f"the images are {size} px (the in-memory path takes up to {_MEMORY_MAX_SIZE} px)"
    n = min(len(data.train), cfg.max_train_samples or len(data.train))
    if n * 3 * size * size > _MEMORY_MAX_BYTES:
        return f"{n} images of {size} px need more than {_MEMORY_MAX_BYTES >> 30} GiB as uint8"
    if cfg.aug_name in ("none", "mixup", "cutmix") or (cfg.step_family is not None and cfg.aug_device == "step"):
        return None
    if cfg.step_family is not None and cfg.aug_device == "loader":
        return f"--aug-device loader makes the {cfg.aug} views in the DataLoader"
    return f"--aug {cfg.aug} runs per image in the DataLoader"



def _stream_steps(data: ImageData, cfg: TrainConfig, world: int) -> int:
    """Steps per epoch of a streamed split: from its declared size (datasets' split info), else from --max-steps."""
    info = getattr(data.train, "info", None)
    splits = getattr(info, "splits", None) or {}
    split = splits.get(cfg.train_split or "train") if hasattr(splits, "get") else None
    if split is not None and split.num_examples:
        return split.num_examples // (cfg.batch_size * world)
    if cfg.max_steps:  # the schedule spans --max-steps; each epoch ends when its stream does
        return -(-cfg.max_steps * cfg.grad_accum_steps // cfg.epochs)
    raise ValueError("this streamed dataset does not declare its size; give --max-steps to bound the schedule")


class _StreamedSplits(torch.utils.data.IterableDataset[tuple[Any, int]]):
    """Applies a :class:`DynMixDataset`'s per-sample seeded transform to a decoded stream."""

    def __init__(self, stream: DecodedIterableDataset, wrapper: DynMixDataset):
        self.stream, self.wrapper = stream, wrapper

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)
        self.wrapper.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        for index, img, label in self.stream:
            yield self.wrapper.transform_sample(img, index), label



class _EvalStream(torch.utils.data.IterableDataset[tuple[torch.Tensor, int]]):
    def __init__(self, stream: Any, data: ImageData, tf: Any):
        self.stream = DecodedIterableDataset(stream, data.image_column, data.label_column)
        self.tf = tf

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for _, img, label in self.stream:
            yield self.tf(img), label


def no_eval_split_note(data: ImageData) -> str:
    """What a run on a dataset without an eval split does about it (no evaluation), and how to name one."""
    splits = data.extra.get("splits")
    return (f"dataset {data.source} has no eval split (test, validation, val or valid"
            + (f"; its splits: {', '.join(splits)}" if splits else "") + "): training without evaluation, so no "
            "clean top-1 is recorded; name a split with --eval-split")
