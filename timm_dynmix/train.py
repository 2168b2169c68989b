"""The Accelerate training function: DynMix (or a timm baseline) + JSD on HF datasets, with exact resume.

``train(TrainConfig(...))`` is the library side of ``examples/train.py``: one Accelerator, one ``prepare``, a plain
loop in the style of Accelerate's ``cv_example.py``. What it adds:

* data from :func:`timm_dynmix.image_data.load_image_data` (Hub, local folders, npz, the embedded digits),
  decoded in guarded code, split views from :class:`timm_dynmix.DynMixDataset`;
* every random draw of the data pipeline derived from ``(seed, epoch, index, view)`` and a per-epoch seeded,
  rank-sharded sampler, so that ranks see disjoint data and draw different augmentations, and a resumed run
  (``resume="latest"``) reproduces an uninterrupted one (bit-identical on CPU with deterministic algorithms);
* speed on CPUs: bf16 autocast + channels-last where the CPU has native bf16, and for small images an in-memory
  data path (decoded once to uint8, crop + flip batched in the step, seeded per ``(seed, epoch, batch, rank)``)
  with DynMix made in the step by ``DynamicMixupBatch``;
* checkpoints through ``accelerator.save_state`` into a temporary folder renamed into place, keeping the last K;
* outputs: the model in timm's hub format, ``results.json`` and the resolved ``config.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torchvision import transforms

from timm_dynmix.baselines import is_aa_star, is_official_augmix, parse_augmix_config
from timm_dynmix.config import default_op_set, given_keys, parse_config
from timm_dynmix.data import DynMixDataset, collate_splits, create_transform, is_dynmix
from timm_dynmix.fileio import atomic_write_bytes, atomic_write_json, fsync_dir
from timm_dynmix.image_data import DecodedImageDataset, DecodedIterableDataset, ImageData, load_image_data
from timm_dynmix.loss import JsdLoss
from timm_dynmix.rng import derive_seed

__all__ = ["TrainConfig", "train", "add_arguments", "config_from_args", "load_recipe", "run", "EpochShardSampler",
           "find_latest_checkpoint", "AUG_CHOICES", "cpu_has_native_bf16", "crop_flip_batch"]

logger = logging.getLogger(__name__)

AUG_CHOICES = ("none", "mixup", "cutmix", "autoaugment", "random-autoaugment", "augmix", "augmix-timm", "dynmix")
_TIMM_AA = {"augmix-timm": "augmix-m3-w3"}  # our names for timm's own augmentations
_TIMM_PREFIXES = ("rand-", "augmix-", "original", "v0")  # timm auto-augment strings (policies, RandAugment, AugMix)
# keys that must match between a checkpoint and the run that resumes it
_RESUME_KEYS = ("model", "dataset", "aug", "jsd", "num_mixes", "batch_size", "seed", "input_size",
                "max_train_samples", "grad_accum_steps", "aug_device", "data_in_memory", "model_ema")
# the in-memory data path: images up to this size, training sets up to this many bytes as uint8
_MEMORY_MAX_SIZE = 64
_MEMORY_MAX_BYTES = 2 << 30
_WHITENING_SAMPLES = 5000


@dataclass
class TrainConfig:
    """Everything a training run depends on; ``examples/configs/*.yaml`` recipes use these field names.

    The defaults train a CIFAR ResNet-8 with DynMix + JSD on the embedded digits data in about a minute on 2 CPU
    cores.
    """

    # data
    dataset: str = "digits"
    data_dir: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    train_split: str | None = None
    eval_split: str | None = None
    streaming: bool = False
    shuffle_buffer: int = 10_000
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    input_size: int | None = None
    # model
    model: str = "resnet8_cifar"
    pretrained: bool = False
    drop_rate: float = 0.0
    # augmentation
    aug: str = "dynmix"
    jsd: bool | None = None
    jsd_weight: float = 12.0
    num_mixes: int | None = None
    aug_device: str = "auto"
    mixup_alpha: float = 1.0
    cutmix_alpha: float = 1.0
    smoothing: float = 0.0
    crop_padding: int | None = None
    # optimization
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.1
    opt: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    filter_bias_and_bn: bool = True
    sched: str = "cosine"
    min_lr: float = 1e-6
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    lr_base_batch_size: int | None = None
    grad_accum_steps: int = 1
    clip_grad: float | None = None
    model_ema: bool = False
    model_ema_decay: float = 0.9998
    model_ema_warmup: bool = False
    mixed_precision: str | None = None
    channels_last: bool | None = None
    data_in_memory: bool | None = None
    # run
    seed: int = 0
    output_dir: str = "output"
    num_workers: int | None = None
    num_threads: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    resume: str | None = None
    eval_every: int = 1
    tta_flip: bool = False
    report_to: str | None = None
    deterministic: bool = False
    max_steps: int | None = None
    push_to_hub: str | None = None

    def validate(self) -> None:
        """Refuse bad values and invalid combinations before anything is loaded or trained."""
        if not isinstance(self.aug, str):
            raise TypeError(f"--aug must be a string, got {self.aug!r} ({type(self.aug).__name__})")
        name = self.aug_name
        if not (self.aug in AUG_CHOICES or is_dynmix(self.aug) or is_official_augmix(self.aug)
                or is_aa_star(self.aug) or self.aug.startswith(_TIMM_PREFIXES)):
            raise ValueError(f"unknown --aug {self.aug!r}; choose one of {', '.join(AUG_CHOICES)}, "
                             f"'dynmix-<config>', 'augmix_official-<config>', 'autoaugment-cifar10', "
                             f"'autoaugment-imagenet' or a timm auto-augment string ('rand-m9-mstd0.5', "
                             f"'augmix-m3-w3', 'original', 'v0')")
        if is_official_augmix(self.aug):
            parse_augmix_config(self.aug)  # raises ValueError with the allowed range
        if is_dynmix(self.aug):
            cfg = parse_config(self.aug)  # raises ValueError with the allowed range
            if self.num_mixes is not None and "-n" in self.aug and cfg.num_mixes != self.num_mixes:
                raise ValueError(f"--num-mixes {self.num_mixes} contradicts n{cfg.num_mixes} in --aug {self.aug}")
        if self.jsd and not self.has_views:
            raise ValueError(f"--jsd needs augmented views from augmix or dynmix; --aug {self.aug} gives none "
                             f"(use --no-jsd, or --aug dynmix / augmix)")
        if self.num_mixes is not None and not 1 <= self.num_mixes <= 8:
            raise ValueError(f"--num-mixes must be in [1, 8], got {self.num_mixes}")
        if self.aug_device not in ("auto", "loader", "model"):
            raise ValueError(f"--aug-device must be 'auto', 'loader' or 'model', got {self.aug_device!r}")
        if self.aug_device == "model" and not is_dynmix(self.aug):
            raise ValueError("--aug-device model runs DynMix inside the training step; it needs --aug dynmix")
        checks = [("epochs", self.epochs, 1), ("batch_size", self.batch_size, 1), ("grad_accum_steps",
                  self.grad_accum_steps, 1), ("keep_checkpoints", self.keep_checkpoints, 1),
                  ("eval_every", self.eval_every, 1)]
        for key, value, low in checks:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"--{key.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        for key in ("checkpoint_every", "max_steps", "max_train_samples", "max_eval_samples", "input_size",
                    "num_threads"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{key.replace('_', '-')} must be a positive integer, got {value!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.jsd_weight < 0:
            raise ValueError(f"need lr > 0, weight decay >= 0 and jsd weight >= 0; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, jsd_weight={self.jsd_weight}")
        if not (isinstance(self.model_ema_decay, float) and 0.0 < self.model_ema_decay < 1.0):
            raise ValueError(f"--model-ema-decay must be a float in (0, 1), got {self.model_ema_decay!r}")
        if name in ("mixup", "cutmix") and self.batch_size % 2:
            raise ValueError(f"--aug {name} needs an even --batch-size (timm's Mixup mixes pairs), "
                             f"got {self.batch_size}")
        if self.mixed_precision not in (None, "no", "fp16", "bf16", "fp8"):
            raise ValueError(f"--mixed_precision must be no, fp16, bf16 or fp8, got {self.mixed_precision!r}")
        if self.push_to_hub is not None:
            from timm_dynmix.hub import check_repo_id

            check_repo_id(self.push_to_hub)  # a typo fails now, not after training
        if self.report_to is not None and not isinstance(self.report_to, str):
            raise ValueError(f"--report-to must be a tracker name (tensorboard, wandb, ...), got {self.report_to!r}")

    @property
    def aug_name(self) -> str:
        """The augmentation family: none, mixup, cutmix, autoaugment, random-autoaugment, augmix or dynmix.

        ``augmix`` covers the official AugMix and timm's; ``autoaugment`` covers AA* and timm's policies and
        RandAugment.
        """
        if is_dynmix(self.aug):
            return "dynmix"
        if self.aug.startswith("augmix"):
            return "augmix"
        if self.aug == "random-autoaugment":
            return self.aug
        if is_aa_star(self.aug) or self.aug.startswith(("rand-", "original", "v0")):
            return "autoaugment"
        return self.aug

    @property
    def has_views(self) -> bool:
        return self.aug_name in ("augmix", "dynmix")

    @property
    def use_jsd(self) -> bool:
        return self.has_views if self.jsd is None else bool(self.jsd)

    @property
    def mixes(self) -> int:
        if self.num_mixes is not None:
            return self.num_mixes
        return parse_config(self.aug).num_mixes if is_dynmix(self.aug) else 2

    @property
    def aug_string(self) -> str | None:
        """The canonical augmentation string for the transform, or None.

        A DynMix or official AugMix config in canonical form, ``autoaugment[-cifar10|-imagenet]`` or
        ``random-autoaugment`` (AA*, Random AA*), or a timm string (``augmix-timm`` gives ``augmix-m3-w3``).
        """
        name = self.aug_name
        if name == "dynmix":
            return parse_config(self.aug).replace(num_mixes=self.mixes).to_string()
        if is_official_augmix(self.aug):
            return parse_augmix_config(self.aug).to_string()
        if name in ("augmix", "autoaugment", "random-autoaugment"):
            return _TIMM_AA.get(self.aug, self.aug)
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------- arguments
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every :class:`TrainConfig` field as a ``--flag`` (default: unset, so YAML and defaults can fill in)."""
    parser.add_argument("--config", "-c", default=None, help="YAML recipe (e.g. examples/configs/*.yaml); "
                        "command-line flags override its values")
    help_text = {
        "dataset": "digits (embedded, offline), cifar10, cifar100, imagenet, a Hub repo id or a local path",
        "data_dir": "local copy of a named dataset (save_to_disk, parquet/arrow, image folder or npz)",
        "aug": "none, mixup, cutmix, autoaugment (AA*), random-autoaugment (Random AA*), augmix (the official AugMix), "
               "augmix-timm (timm's augmix-m3-w3), dynmix or dynmix-<config>; or a timm auto-augment string",
        "jsd": "JSD consistency loss over clean + mixed views (default: on for augmix/dynmix)",
        "num_mixes": "mixed views per image for JSD (default 2; 1 = single-view ablation)",
        "aug_device": "loader (DataLoader workers), model (DynMix inside the training step) or auto (model for "
                      "dynmix with the data in memory, else loader)",
        "batch_size": "images per process and step (each yields 1 + num_mixes views with JSD)",
        "resume": "checkpoint folder, or 'latest' to continue from the newest one in output-dir",
        "checkpoint_every": "also save a checkpoint every N optimizer steps",
        "mixed_precision": "no, fp16, bf16 (passed to Accelerate); default: bf16 on CPUs with native bf16 "
                           "(AVX512_BF16 or AMX), else no",
        "channels_last": "channels-last memory format for the model and batches (default: on with bf16 on CPU)",
        "data_in_memory": "decode the training set once into a uint8 tensor and crop/flip batches in the step "
                          "(default: on for small images that fit in 2 GiB, with augmentations the step can do)",
        "report_to": "tracker for Accelerate's log_with: tensorboard, wandb, ...",
        "push_to_hub": "repo id to push the final model and card to (token from HF_TOKEN or the HF login)",
        "input_size": "training image size (default: the dataset's, e.g. 32 for CIFAR)",
        "max_steps": "stop after this many optimizer steps (for smoke tests)",
        "tta_flip": "also report clean_top1_tta_flip: eval top-1 of the mean logits of each image and its mirror "
                    "(test-time augmentation; off by default, clean_top1 never uses it)",
        "model_ema": "keep an exponential moving average of the weights (timm's ModelEmaV3); evaluation, the "
                     "results and the saved model then use the averaged weights (the raw model's top-1 is "
                     "reported as raw_clean_top1)",
        "model_ema_decay": "decay of the weight average per optimizer step (the maximum with --model-ema-warmup)",
        "model_ema_warmup": "ramp the decay up from 0 as timm does (1 - (1 + step)^(-2/3), capped by the decay)",
        "num_threads": "compute threads per process on CPU (default: the usable cores / processes; on a CPU "
                       "shared with other jobs, fewer threads can be much faster)",
    }
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "mixed_precision":
            flag = "--mixed_precision"
        kind = str(f.type)
        if "bool" in kind:
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                                help=help_text.get(f.name))
            continue
        typ = int if kind.startswith("int") else float if kind.startswith("float") else str
        parser.add_argument(flag, dest=f.name, default=None, type=typ, help=help_text.get(f.name))


def run(args: argparse.Namespace) -> int:
    """``timm-dynmix train``: the same as ``examples/train.py`` (run it under ``accelerate launch`` or torchrun)."""
    options = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    results = train(config_from_args(options))
    if results["process_index"] == 0:
        top1 = results["metrics"].get("clean_top1", float("nan"))
        print(f"done: eval top-1 {top1:.2f}% after {results['epochs']} epochs; "
              f"outputs in {results['config']['output_dir']}")
    return 0


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML recipe: a mapping of :class:`TrainConfig` field names to values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"recipe {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping of option: value, got {type(data).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"recipe {path} has unknown keys {unknown}; known: {sorted(known)}")
    return data


def config_from_args(args: argparse.Namespace | dict[str, Any]) -> TrainConfig:
    """Defaults <- YAML recipe (``config``) <- explicitly given flags; validated."""
    given = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    values: dict[str, Any] = {}
    recipe = given.pop("config", None)
    if recipe:
        values.update(load_recipe(recipe))
    values.update({k: v for k, v in given.items() if v is not None})
    types = {f.name: f.type for f in fields(TrainConfig)}
    for key, value in list(values.items()):
        if key not in types:
            raise ValueError(f"unknown training option {key!r}")
        kind = str(types[key])
        if kind.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        if kind.startswith(("int", "float", "bool")) and isinstance(value, str):
            raise ValueError(f"option {key} must be a {kind.split()[0]}, got {value!r}")
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------------------------------- sampling
class EpochShardSampler(torch.utils.data.Sampler[int]):
    """A seeded per-epoch shuffle, split into disjoint per-rank shards, resumable at a batch.

    Epoch ``e``'s order is a permutation from ``derive_seed(seed, e, split="sampler")``; it is cut to a multiple of
    ``batch_size * world_size`` (the remainder is dropped, as with ``drop_last``) and rank ``r`` takes every
    ``world_size``-th index starting at ``r``. ``set_epoch(e, start_batch=k)`` skips the first ``k`` batches of this
    rank's shard, which is how a run resumes mid-epoch.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if num_samples < batch_size * world_size:
            raise ValueError(f"the training set has {num_samples} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes)")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def indices(self, epoch: int) -> list[int]:
        """This rank's indices of epoch ``epoch`` (all batches)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, split="sampler"))
            order = torch.randperm(self.num_samples, generator=g)
        else:
            order = torch.arange(self.num_samples)
        usable = self.batches_per_epoch * self.batch_size * self.world_size
        return order[:usable][self.rank::self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch)[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class _StreamedSplits(torch.utils.data.IterableDataset):
    """Applies a :class:`DynMixDataset`'s per-sample seeded transform to a decoded stream."""

    def __init__(self, stream: DecodedIterableDataset, wrapper: DynMixDataset):
        self.stream, self.wrapper = stream, wrapper

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)
        self.wrapper.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        for index, img, label in self.stream:
            yield self.wrapper.transform_sample(img, index), label


# ------------------------------------------------------------------------------------------------------- models
def create_train_model(cfg: TrainConfig, data: ImageData, input_size: int | None) -> tuple[nn.Module, dict[str, Any]]:
    """Create the model and the ``pretrained_cfg`` (input size, normalization) the run trains and saves with."""
    num_classes = data.num_classes
    if cfg.model.startswith("transformers:"):
        from timm_dynmix.models.transformers import create_transformers_model

        return create_transformers_model(cfg.model.split(":", 1)[1], num_classes, data.label_names,
                                         input_size or data.input_size)
    import timm

    import timm_dynmix.models.cifar  # noqa: F401 - registers the CIFAR architectures

    if not timm.is_model(cfg.model.split(".")[0]) and not cfg.model.startswith(("hf-hub:", "local-dir:")):
        close = timm.list_models(f"*{cfg.model.split('.')[0][:6]}*")[:8]
        raise ValueError(f"unknown model {cfg.model!r}: not a timm model name"
                         + (f" (close: {', '.join(close)})" if close else "") + "; CIFAR models: wrn40_2, "
                         "resnext29_32x4d, densenet_bc_100_12, allconv, resnet8_cifar, resnet20_cifar; or "
                         "transformers:<repo id or path>")
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    model = timm.create_model(cfg.model, pretrained=cfg.pretrained, **kwargs)
    pcfg = dict(model.pretrained_cfg)
    size = input_size or data.input_size or pcfg.get("input_size", (3, 224, 224))[-1]
    pcfg.update(input_size=(3, size, size), num_classes=num_classes)
    if size <= 64:
        pcfg.update(crop_pct=1.0, test_input_size=(3, size, size), fixed_input_size=False)
    return model, pcfg


# ------------------------------------------------------------------------------------------------- checkpoints
_CKPT_PREFIX = "step_"
_STATE_FILE = "trainer_state.json"


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``output_dir/checkpoints`` (temporary and incomplete folders ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    complete = []
    for d in root.iterdir():
        if not d.is_dir() or not d.name.startswith(_CKPT_PREFIX):
            continue
        if not (d / _STATE_FILE).is_file():
            logger.warning("ignoring incomplete checkpoint %s (no %s)", d.name, _STATE_FILE)
            continue
        complete.append(d)
    return max(complete, key=lambda d: int(d.name[len(_CKPT_PREFIX):]), default=None)


def _save_checkpoint(accelerator: Any, output_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Save the full training state atomically: write to ``.tmp-step_N``, then rename to ``step_N``."""
    root = output_dir / "checkpoints"
    final = root / f"{_CKPT_PREFIX}{state['global_step']:09d}"
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / _STATE_FILE, state)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        old = sorted((d for d in root.iterdir() if d.name.startswith(_CKPT_PREFIX)), key=lambda d: d.name)
        for d in old[:-keep]:
            shutil.rmtree(d, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# ---------------------------------------------------------------------------------------------------- helpers
def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _subset(ds: Any, n: int | None, seed: int) -> Any:
    if n is None or n >= len(ds):
        return ds
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return ds.select(idx.tolist())


def _versions() -> dict[str, str]:
    import accelerate
    import datasets
    import timm
    import torchvision

    import timm_dynmix

    return {"timm_dynmix": timm_dynmix.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "accelerate": accelerate.__version__, "datasets": datasets.__version__,
            "python": platform.python_version()}


class _Normalize(nn.Module):
    """(x / 255 - mean) / std on the device, for uint8 batches (augmentation on the device)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: the AVX512_BF16 or AMX-BF16 flag in ``/proc/cpuinfo`` (Linux).

    Elsewhere (no such file, other CPUs) it answers False, and CPU training stays in float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    return False


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


class _MemoryImages:
    """A split decoded once into a uint8 tensor ``(N, 3, H, W)`` and int64 labels (the in-memory data path)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    @classmethod
    def decode(cls, ds: DecodedImageDataset, size: int) -> _MemoryImages | None:
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

    def batches(self, sampler: EpochShardSampler, epoch: int, start_batch: int, padding: int, seed: int,
                rank: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's training batches of ``epoch`` from ``start_batch`` on: uint8 crops + flips and labels.

        The crops of batch ``k`` are drawn from ``derive_seed(seed, epoch, k, rank)``, so a resumed run repeats
        an uninterrupted one.
        """
        order = torch.tensor(sampler.indices(epoch), dtype=torch.int64)
        bs = sampler.batch_size
        for k in range(start_batch, sampler.batches_per_epoch):
            idx = order[k * bs:(k + 1) * bs]
            gen = torch.Generator().manual_seed(derive_seed(seed, epoch, k, rank, split="memory-crop"))
            yield crop_flip_batch(self.images[idx], padding, gen), self.labels[idx]


def _memory_path_possible(cfg: TrainConfig, data: ImageData, size: int) -> str | None:
    """Why the in-memory data path cannot run (None: it can)."""
    if data.streaming:
        return "the dataset is streamed"
    if size > _MEMORY_MAX_SIZE:
        return f"the images are {size} px (the in-memory path takes up to {_MEMORY_MAX_SIZE} px)"
    n = min(len(data.train), cfg.max_train_samples or len(data.train))
    if n * 3 * size * size > _MEMORY_MAX_BYTES:
        return f"{n} images of {size} px need more than {_MEMORY_MAX_BYTES >> 30} GiB as uint8"
    if cfg.aug_name not in ("none", "mixup", "cutmix", "dynmix"):
        return f"--aug {cfg.aug} runs per image in the DataLoader"
    if cfg.aug_name == "dynmix" and cfg.aug_device == "loader":
        return "--aug-device loader makes the DynMix views in the DataLoader"
    return None


# ------------------------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a classifier as ``cfg`` says and return the results (also written to ``output_dir/results.json``)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from tqdm.auto import tqdm

    cfg.validate()
    start_time = time.time()
    output_dir = Path(cfg.output_dir)
    has_accelerator = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()) or (
        torch.backends.mps.is_available())
    native_bf16 = None if has_accelerator else cpu_has_native_bf16()
    if cfg.mixed_precision is None and not has_accelerator:  # bf16 autocast where the CPU computes it natively
        cfg = dataclasses.replace(cfg, mixed_precision="bf16" if native_bf16 else "no")
    _allow_precision_change(cfg.mixed_precision)
    accelerator = Accelerator(
        cpu=not has_accelerator, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=cfg.report_to, project_config=ProjectConfiguration(project_dir=str(output_dir),
                                                                    logging_dir=str(output_dir / "logs")))
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.device.type == "cpu":
        # accelerate launch pins 1 thread per process
        torch.set_num_threads(cfg.num_threads or max(1, _cpu_count() // world))
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file otherwise
    set_seed(cfg.seed)

    # ---- data
    data = load_image_data(cfg.dataset, data_dir=cfg.data_dir, image_column=cfg.image_column,
                           label_column=cfg.label_column, train_split=cfg.train_split, eval_split=cfg.eval_split,
                           streaming=cfg.streaming)
    model, pcfg = create_train_model(cfg, data, cfg.input_size)
    size = pcfg["input_size"][-1]
    if is_dynmix(cfg.aug) and "o" not in given_keys(cfg.aug):  # the op set for the image size, recorded as run
        cfg = dataclasses.replace(cfg, aug=f"{cfg.aug}-o{default_op_set(size)}")
    mean, std = tuple(pcfg["mean"]), tuple(pcfg["std"])
    memory_asked = cfg.data_in_memory
    cfg = _resolve_speed_options(cfg, data, size, accelerator)
    train_tf, loader_views = _train_transform(cfg, size, mean, std)
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
    memory = memory_eval = None
    if cfg.data_in_memory:
        decode_start = time.time()
        memory = _MemoryImages.decode(decoded_train, size)
        if memory is None and memory_asked:
            raise ValueError(f"--data-in-memory needs every training image at {size}x{size} px; some differ "
                             f"(use --no-data-in-memory)")
        if memory is None:
            cfg = dataclasses.replace(cfg, data_in_memory=False)
            decoded_train._fallback.counts.zero_()  # the DataLoader decodes (and counts) every image again
        else:
            logger.info("decoded %d training images into memory in %.1f s", len(memory), time.time() - decode_start)
    workers = cfg.num_workers if cfg.num_workers is not None else min(4, max(1, _cpu_count() // world - 1))
    collate = collate_splits if loader_views > 1 else None
    train_dl = None if memory is not None else torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers, collate_fn=collate, drop_last=True,
        pin_memory=has_accelerator)
    eval_dl = None
    if data.eval is not None:
        eval_data = _subset(data.eval, cfg.max_eval_samples, cfg.seed) if not data.streaming else data.eval
        if memory is not None:
            memory_eval = _MemoryImages.decode(DecodedImageDataset(eval_data, data.image_column, data.label_column),
                                               size)
        if memory_eval is not None:  # eval images at the model's size: the eval transform is ToTensor + Normalize
            eval_ds: Any = torch.utils.data.TensorDataset(memory_eval.images, memory_eval.labels)
            eval_dl = torch.utils.data.DataLoader(eval_ds, batch_size=max(cfg.batch_size, 256))
        else:
            eval_ds = DecodedImageDataset(eval_data, data.image_column, data.label_column, transform=eval_tf) \
                if not data.streaming else _EvalStream(eval_data, data, eval_tf)
            eval_dl = torch.utils.data.DataLoader(eval_ds, batch_size=max(cfg.batch_size, 256), num_workers=workers)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    normalize = _Normalize(mean, std).to(accelerator.device)

    def to_model_input(x: torch.Tensor) -> torch.Tensor:
        """uint8 batches (in-memory path) -> normalized floats; every batch in the model's memory format."""
        if x.dtype == torch.uint8:
            x = normalize(x.contiguous(memory_format=memory_format) if x.ndim == 4 else x)
        return x.contiguous(memory_format=memory_format) if x.ndim == 4 else x

    if memory is not None and hasattr(model, "init_whitening") and not cfg.pretrained:
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, split="whitening"))
        pick = torch.randperm(len(memory), generator=gen)[:_WHITENING_SAMPLES]
        model.init_whitening(normalize(memory.images[pick]))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)

    # ---- model, optimizer, schedule
    lr = cfg.lr if cfg.lr_base_batch_size is None else cfg.lr * cfg.batch_size * world / cfg.lr_base_batch_size
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                                    filter_bias_and_bn=cfg.filter_bias_and_bn)
    steps_per_epoch = (sampler.batches_per_epoch if sampler is not None else _stream_steps(data, cfg, world))
    updates_per_epoch = max(1, steps_per_epoch // cfg.grad_accum_steps)
    scheduler, _ = create_scheduler_v2(optimizer, sched=cfg.sched, num_epochs=cfg.epochs, min_lr=cfg.min_lr,
                                       warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr,
                                       step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    model, optimizer = accelerator.prepare(model, optimizer)
    if eval_dl is not None:
        eval_dl = accelerator.prepare(eval_dl)
    accelerator.register_for_checkpointing(scheduler)
    ema = None
    if cfg.model_ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup,
                         device=accelerator.device)
        ema.module.eval()
        accelerator.register_for_checkpointing(ema)  # saved and resumed with the model

    mixup = None
    if cfg.aug_name in ("mixup", "cutmix"):
        mixup = Mixup(mixup_alpha=cfg.mixup_alpha if cfg.aug_name == "mixup" else 0.0,
                      cutmix_alpha=cfg.cutmix_alpha if cfg.aug_name == "cutmix" else 0.0,
                      label_smoothing=cfg.smoothing, num_classes=data.num_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif num_splits > 1:
        criterion = JsdLoss(num_splits=num_splits, weight=cfg.jsd_weight, smoothing=cfg.smoothing)
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.smoothing)
    device_aug = _device_augmentation(cfg, mean, std, accelerator.device, rank) if cfg.aug_device == "model" else None

    # ---- resume
    epoch, start_batch, global_step = 0, 0, 0
    history: list[dict[str, Any]] = []
    resume_from = None
    if cfg.resume:
        resume_from = find_latest_checkpoint(output_dir) if cfg.resume == "latest" else Path(cfg.resume)
        if resume_from is None:
            logger.info("--resume latest: no checkpoint in %s yet, starting from scratch", output_dir)
        elif not (resume_from / _STATE_FILE).is_file():
            raise ValueError(f"--resume {cfg.resume}: {resume_from} is not a complete checkpoint (no {_STATE_FILE})")
    if resume_from is not None:
        state = json.loads((resume_from / _STATE_FILE).read_text())
        saved = state.get("config", {})
        diffs = [k for k in _RESUME_KEYS if k in saved and saved[k] != getattr(cfg, k)]
        if state.get("world_size", world) != world:
            diffs.append("world_size")
        if diffs:
            raise ValueError(f"cannot resume from {resume_from}: it was trained with different {', '.join(diffs)} "
                             f"({', '.join(f'{k}={saved.get(k, state.get(k))!r}' for k in diffs)})")
        epoch, start_batch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        history = state.get("history", [])
        if state.get("epoch_complete"):
            epoch, start_batch = epoch + 1, 0
        logger.info("resuming from %s: epoch %d, batch %d, step %d", resume_from.name, epoch, start_batch, global_step)

    if resume_from is None and find_latest_checkpoint(output_dir) is not None:
        logger.warning("%s holds checkpoints of an earlier run; this run starts from scratch and replaces them "
                       "(use --resume latest to continue that run instead)", output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    if cfg.report_to:
        accelerator.init_trackers(output_dir.name, config={k: v for k, v in cfg.to_dict().items()
                                                          if isinstance(v, (int, float, str, bool))})

    metrics: dict[str, Any] = history[-1] if history else {}
    stop = False
    samples_seen, train_time = 0, 0.0
    while epoch < cfg.epochs and not stop:
        if sampler is not None:
            sampler.set_epoch(epoch, start_batch)
        train_ds.set_epoch(epoch)
        model.train()
        if memory is not None:
            pad = size // 8 if cfg.crop_padding is None else cfg.crop_padding
            batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = memory.batches(sampler, epoch, start_batch, pad,
                                                                                   cfg.seed, rank)
        else:
            batches = iter(train_dl)
        if resume_from is not None:
            accelerator.load_state(str(resume_from))  # after the iterator exists: RNG states exactly as saved
            resume_from = None
        loss_sum = torch.zeros((), device=accelerator.device)
        loss_count = 0
        epoch_start = time.time()
        progress = tqdm(total=steps_per_epoch, initial=start_batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                        disable=None if accelerator.is_local_main_process else True,  # None: on terminals only
                        leave=False)
        step_in_epoch = first_batch = start_batch
        for x, y in batches:
            x, y = x.to(accelerator.device, non_blocking=True), y.to(accelerator.device, non_blocking=True)
            samples_seen += x.shape[0] // loader_views  # source images, whatever the number of views
            if device_aug is not None:
                x = device_aug(x, global_step)
            x = to_model_input(x)
            if mixup is not None:
                x, y = mixup(x, y)
            with accelerator.accumulate(model):
                loss = criterion(model(x), y)
                accelerator.backward(loss)
                if cfg.clip_grad and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step_in_epoch += 1
            loss_sum += loss.detach()
            loss_count += 1
            progress.update(1)
            if accelerator.sync_gradients:
                global_step += 1
                scheduler.step_update(num_updates=global_step)
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model), step=global_step)
                if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0:
                    _save_checkpoint(accelerator, output_dir, _state(cfg, epoch, step_in_epoch, global_step, world,
                                                                     history, False), cfg.keep_checkpoints)
                if cfg.max_steps and global_step >= cfg.max_steps:
                    stop = True
                    break
        progress.close()
        epoch_time = time.time() - epoch_start
        train_time += epoch_time
        start_batch = 0
        mean_loss = accelerator.reduce(loss_sum / max(1, loss_count), reduction="mean").item()
        record = {"epoch": epoch + 1, "train_loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                  "samples_per_s": world * (step_in_epoch - first_batch) * cfg.batch_size / max(epoch_time, 1e-9),
                  "epoch_time_s": epoch_time}
        if first_batch:
            record["resumed_at_batch"] = first_batch
        if eval_dl is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs or stop):
            if ema is not None:  # the averaged weights are the run's model; the raw weights' top-1 is kept too
                raw = evaluate_top1(model, eval_dl, accelerator, prepare=to_model_input)
                with accelerator.autocast():
                    record.update(evaluate_top1(ema.module, eval_dl, accelerator, prepare=to_model_input,
                                                tta_flip=cfg.tta_flip))
                ema.module.eval()
                record.update(raw_clean_top1=raw["clean_top1"], raw_clean_loss=raw["clean_loss"])
            else:
                record.update(evaluate_top1(model, eval_dl, accelerator, prepare=to_model_input,
                                            tta_flip=cfg.tta_flip))
        history.append(record)
        if accelerator.is_main_process:
            logger.info("epoch %d/%d: %s", epoch + 1, cfg.epochs,
                        ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        if cfg.report_to:
            accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
        metrics = record
        if not stop:
            _save_checkpoint(accelerator, output_dir, _state(cfg, epoch, step_in_epoch, global_step, world,
                                                             history, True), cfg.keep_checkpoints)
        epoch += 1

    # ---- outputs
    unwrapped = accelerator.unwrap_model(model)
    checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in unwrapped.parameters())],
                            device=accelerator.device, dtype=torch.float64)
    checksums = accelerator.gather(checksum).tolist()
    fallbacks = accelerator.reduce(torch.tensor([decoded_train.fallback_count], device=accelerator.device),
                                   reduction="sum").item()
    shards_disjoint = None
    if sampler is not None:
        idx = torch.tensor(sampler.indices(0), device=accelerator.device)
        everything = accelerator.gather(idx).tolist()
        shards_disjoint = len(set(everything)) == len(everything)
    results = {
        "model": cfg.model, "architecture": getattr(unwrapped, "pretrained_cfg", {}).get("architecture", cfg.model),
        "dataset": {"name": cfg.dataset, "source": data.source, "repo": data.extra.get("repo"),
                    "path": data.extra.get("path"), "provenance": data.provenance,
                    "train_split": data.extra.get("train_split"), "eval_split": data.extra.get("eval_split"),
                    "num_classes": data.num_classes, "label_names": data.label_names,
                    "train_samples": len(decoded_train) if not data.streaming else None,
                    "fallback_images": int(fallbacks)},
        "aug": cfg.aug_string or cfg.aug_name, "aug_name": cfg.aug_name, "jsd": num_splits > 1,
        "jsd_weight": cfg.jsd_weight if num_splits > 1 else None, "num_mixes": cfg.mixes if num_splits > 1 else None,
        "aug_device": cfg.aug_device, "data_in_memory": memory is not None,
        "epochs": cfg.epochs, "steps": global_step, "batch_size": cfg.batch_size,
        "global_batch_size": cfg.batch_size * world * cfg.grad_accum_steps, "lr": lr, "optimizer": cfg.opt,
        "scheduler": cfg.sched, "weight_decay": cfg.weight_decay, "seed": cfg.seed, "world_size": world,
        "model_ema_decay": cfg.model_ema_decay if ema is not None else None,
        "mixed_precision": accelerator.mixed_precision, "channels_last": bool(cfg.channels_last),
        "cpu_native_bf16": native_bf16, "device": accelerator.device.type,
        "input_size": list(pcfg["input_size"]), "mean": list(mean), "std": list(std),
        "metrics": {k: v for k, v in metrics.items() if k != "epoch"}, "history": history,
        "train_samples_per_s": samples_seen * world / max(train_time, 1e-9),
        "rank_weight_checksums": checksums, "shards_disjoint": shards_disjoint,
        "elapsed_s": time.time() - start_time, "versions": _versions(), "config": cfg.to_dict(),
    }
    results_file = dict(results)
    results["process_index"] = rank
    if accelerator.is_main_process:
        atomic_write_json(output_dir / "results.json", results_file)
        _save_final_model(ema.module if ema is not None else unwrapped, pcfg, output_dir, data, results_file)
        logger.info("saved the model, its card and results.json to %s", output_dir)
        if cfg.push_to_hub:
            results["pushed"] = _push(output_dir, cfg.push_to_hub)
    accelerator.wait_for_everyone()
    if cfg.report_to:
        accelerator.end_training()
    return results


def _train_transform(cfg: TrainConfig, size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[Any, int]:
    """The training transform and the number of views each loader item holds.

    DynMix or AugMix with JSD: clean + ``mixes`` views of one crop (split-major after ``collate_splits``). Without
    JSD: one augmented view trained with cross entropy (the paper's "no JSD" ablation for DynMix). With
    ``aug_device == "model"``: uint8 crops only; the step makes the views. Mixup/CutMix act in the step too.
    """
    common = {"is_training": True, "mean": mean, "std": std, "crop_padding": cfg.crop_padding}
    if cfg.aug_device == "model":
        return create_transform(size, aug=None, normalize=False, **common), 1
    if cfg.aug_name in ("none", "mixup", "cutmix"):
        return create_transform(size, aug=None, **common), 1
    if not (cfg.has_views and cfg.use_jsd):
        if cfg.aug_name == "dynmix":  # DynMixViews always makes the clean view too: compose the stages instead
            base, dynmix, final = create_transform(size, aug=cfg.aug_string, separate=True, **common)
            return transforms.Compose([base, dynmix, final]), 1
        return create_transform(size, aug=cfg.aug_string, **common), 1
    if cfg.aug_name == "augmix":  # AugMix stages (official: float views; or timm's), applied per view by DynMixDataset
        return create_transform(size, aug=cfg.aug_string, separate=True, **common), 1 + cfg.mixes
    return create_transform(size, aug=cfg.aug_string, num_mixes=cfg.mixes, **common), 1 + cfg.mixes


def _allow_precision_change(mixed_precision: str | None) -> None:
    """Let a later ``train()`` call in the same process use another precision than an earlier one.

    Accelerate keeps one process-wide state and refuses a second ``Accelerator`` with another mixed precision;
    between runs (benchmarks, tests) that state is cleared, the distributed setup (``PartialState``) is kept.
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision or "no"):
        AcceleratorState._reset_state(reset_partial_state=False)


def _resolve_speed_options(cfg: TrainConfig, data: ImageData, size: int, accelerator: Any) -> TrainConfig:
    """Fill in the automatic speed options: channels-last, the in-memory data path and the DynMix device.

    * ``channels_last``: on with bf16 autocast on a CPU (oneDNN's fast layout there).
    * ``data_in_memory``: on when :func:`_memory_path_possible` finds nothing against it; an explicit True that
      cannot run is refused.
    * ``aug_device`` ``auto``: DynMix runs in the step (``model``: batched, measured faster than the DataLoader
      path on CPU and GPU); every other augmentation in the loader.
    """
    updates: dict[str, Any] = {}
    if cfg.channels_last is None:
        updates["channels_last"] = accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16"
    if cfg.aug_device == "auto":
        updates["aug_device"] = "model" if cfg.aug_name == "dynmix" else "loader"
    cfg = dataclasses.replace(cfg, **updates)
    why_not = _memory_path_possible(cfg, data, size)
    if cfg.data_in_memory and why_not:
        raise ValueError(f"--data-in-memory cannot run: {why_not}")
    if cfg.data_in_memory is None:
        if why_not:
            logger.info("data path: DataLoader (%s)", why_not)
        cfg = dataclasses.replace(cfg, data_in_memory=why_not is None)
    return cfg


def _state(cfg: TrainConfig, epoch: int, step_in_epoch: int, global_step: int, world: int,
           history: list[dict[str, Any]], epoch_complete: bool) -> dict[str, Any]:
    """What a checkpoint records beside Accelerate's state (model, optimizer, scheduler, RNG states)."""
    return {"epoch": epoch, "step_in_epoch": step_in_epoch, "epoch_complete": epoch_complete,
            "global_step": global_step, "world_size": world, "history": history, "config": cfg.to_dict()}


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


class _EvalStream(torch.utils.data.IterableDataset):
    def __init__(self, stream: Any, data: ImageData, tf: Any):
        self.stream = DecodedIterableDataset(stream, data.image_column, data.label_column)
        self.tf = tf

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for _, img, label in self.stream:
            yield self.tf(img), label


@torch.no_grad()
def evaluate_top1(model: nn.Module, loader: Any, accelerator: Any, prepare: Any = None,
                  tta_flip: bool = False) -> dict[str, float]:
    """Clean top-1 accuracy (percent) and loss over ``loader``, gathered across processes without duplicates.

    ``prepare`` (optional) maps each input batch to the model's input (normalization, memory format). With
    ``tta_flip`` the result also holds ``clean_top1_tta_flip``: top-1 of the mean logits of each image and its
    horizontal mirror; ``clean_top1`` and ``clean_loss`` never use test-time augmentation.
    """
    model.eval()
    correct = total = correct_tta = 0
    loss_sum = 0.0
    for x, y in loader:
        x = prepare(x) if prepare is not None else x
        logits = model(x)
        if tta_flip:
            both = (logits.float() + model(x.flip(-1)).float()) / 2
            both, y_all = accelerator.gather_for_metrics((both, y))
            correct_tta += (both.argmax(-1) == y_all).sum().item()
        logits, y = accelerator.gather_for_metrics((logits, y))
        correct += (logits.argmax(-1) == y).sum().item()
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
        total += y.numel()
    model.train()
    out = {"clean_top1": 100.0 * correct / max(1, total), "clean_loss": loss_sum / max(1, total),
           "eval_samples": total}
    if tta_flip:
        out["clean_top1_tta_flip"] = 100.0 * correct_tta / max(1, total)
    return out


def _device_augmentation(cfg: TrainConfig, mean: Sequence[float], std: Sequence[float], device: torch.device,
                         rank: int) -> Any:
    """DynMix in the training step: uint8 crops in, normalized views out (split-major ``[clean, mix_1, ...]`` with JSD).

    The generator of every step is seeded from ``(seed, global step, rank)``: ranks draw different views and a
    resumed run repeats the views of an uninterrupted one.
    """
    from timm_dynmix.batched import DynamicMixupBatch

    config = parse_config(cfg.aug_string)
    aug = DynamicMixupBatch(config if cfg.use_jsd else config.replace(num_mixes=1)).to(device)
    norm = _Normalize(mean, std).to(device)
    gen = torch.Generator(device=device)

    def run(x: torch.Tensor, step: int) -> torch.Tensor:
        gen.manual_seed(derive_seed(cfg.seed, step, rank, split="device-aug"))
        if cfg.use_jsd:
            return aug.views(x, mean=mean, std=std, generator=gen)
        return norm(aug(x, generator=gen)[0])

    return run


def _save_final_model(model: nn.Module, pcfg: dict[str, Any], output_dir: Path, data: ImageData,
                      results: dict[str, Any]) -> None:
    """The final model: timm's hub format for timm models, transformers' format for wrapped transformers models."""
    from timm_dynmix.models.transformers import TransformersClassifier

    if isinstance(model, TransformersClassifier):
        model.hf_model.save_pretrained(output_dir / "model")
        return
    from timm_dynmix.hub import save_pretrained

    model.pretrained_cfg = {**pcfg, "architecture": pcfg.get("architecture", results["model"])}
    save_pretrained(model, output_dir, label_names=data.label_names, results=results)


def _push(output_dir: Path, repo_id: str) -> bool:
    """Push the saved model folder; a failure is logged, never raised: the local outputs stay as they are."""
    from timm_dynmix.hub import HubError, push_to_hub

    try:
        url = push_to_hub(output_dir, repo_id)
    except HubError as e:
        logger.error("push to the Hub failed; every local file is kept in %s. %s", output_dir, e)
        logger.error("retry with: timm-dynmix push %s %s", output_dir, repo_id)
        return False
    logger.info("pushed to %s", url)
    return True

