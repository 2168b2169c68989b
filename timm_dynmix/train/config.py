"""What a training run depends on: :class:`TrainConfig` (one field per option, its help text beside it), YAML
recipes (:func:`load_recipe`) and the merge defaults <- recipe <- flags (:func:`config_from_args`).

The command line (``timm-dynmix train``, ``examples/train.py``) is built from the fields by
:func:`timm_dynmix.cli.train.add_arguments`; the argument types come from the fields' type hints.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from timm_dynmix.augment.spec import AUG_CHOICES, AUG_DEVICES, STEP_AUGMENTATIONS, AugSpec, create_aug_spec

__all__ = ["TrainConfig", "AUG_CHOICES", "AUG_DEVICES", "STEP_AUGMENTATIONS", "load_recipe", "config_from_args",
           "field_types", "field_help", "check_aug"]


# kept for callers of the former API: the package itself decides an --aug's family and parses it only in
# timm_dynmix.augment.spec (create_aug_spec), once, into TrainConfig.spec
def is_prime(aug: object) -> bool:
    """Whether ``aug`` is a PRIME config string (``prime``, ``prime-imagenet``, ``prime-<keys>``)."""
    return isinstance(aug, str) and (aug == "prime" or aug.startswith("prime-"))


def parse_prime(aug: str) -> Any:
    """:func:`timm_dynmix.augment.prime.parse_prime_config` (imported on use: it imports torch)."""
    from timm_dynmix.augment.prime import parse_prime_config

    return parse_prime_config(aug)


# the baselines module imports torch: loaded on first use, so that `timm-dynmix train --help` stays fast
def is_aa_star(aug: object) -> bool:
    """:func:`timm_dynmix.augment.baselines.is_aa_star`."""
    from timm_dynmix.augment.baselines import is_aa_star as check

    return check(aug)


def is_official_augmix(aug: object) -> bool:
    """:func:`timm_dynmix.augment.baselines.is_official_augmix`."""
    from timm_dynmix.augment.baselines import is_official_augmix as check

    return check(aug)


def parse_augmix_config(aug: str) -> Any:
    """:func:`timm_dynmix.augment.baselines.parse_augmix_config`."""
    from timm_dynmix.augment.baselines import parse_augmix_config as parse

    return parse(aug)


def _opt(default: Any, help: str) -> Any:
    """A dataclass field with its command-line help text."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a training run depends on; ``examples/configs/*.yaml`` recipes use these field names.

    The defaults train a CIFAR ResNet-8 with DynMix + JSD on the embedded digits data in about a minute on 2 CPU
    cores.
    """

    # data
    dataset: str = _opt("digits", "digits (embedded, offline), cifar10, cifar100, imagenet, a Hub repo id or a "
                                  "local path")
    data_dir: str | None = _opt(None, "local copy of a named dataset (save_to_disk, parquet/arrow, image folder or "
                                      "npz)")
    image_column: str | None = _opt(None, "image column of the dataset (default: detected, e.g. img or image)")
    label_column: str | None = _opt(None, "label column of the dataset (default: detected, e.g. label or fine_label)")
    train_split: str | None = _opt(None, "split to train on (default: detected, usually train)")
    eval_split: str | None = _opt(None, "split to evaluate on (default: detected: test, validation, val or "
                                       "valid; without one the run is not evaluated)")
    streaming: bool = _opt(False, "stream the dataset from the Hub instead of downloading it (datasets' streaming)")
    shuffle_buffer: int = _opt(10_000, "shuffle buffer size, in images, with --streaming")
    max_train_samples: int | None = _opt(None, "train on the first N training images only (default: all)")
    max_eval_samples: int | None = _opt(None, "evaluate on the first N images of the eval split only (default: all "
                                            "of them)")
    input_size: int | None = _opt(None, "training image size (default: the dataset's, e.g. 32 for CIFAR)")
    # model
    model: str = _opt("resnet8_cifar", "timm model name (ours included: wrn40_2, ...) or transformers:<repo id or "
                                      "folder>")
    pretrained: bool = _opt(False, "start from the pretrained weights timm has for --model")
    drop_rate: float = _opt(0.0, "dropout rate before the classifier")
    stem: str | None = _opt(None, "first-layer initialisation of models that offer a data-dependent one "
                                  "(fastnet_cifar): learned (ordinary init, trained) or whitened (set to the whitening "
                                  "transform of 5,000 seeded training images' patches and frozen, on every data path); "
                                  "default: learned; recorded in results.json as resolved.stem")
    # augmentation
    aug: str = _opt("dynmix", "none, mixup, cutmix, autoaugment (AA*), random-autoaugment (Random AA*), augmix (the "
                              "official AugMix), augmix-timm (timm's augmix-m3-w3), dynmix or dynmix-<config>; or a "
                              "timm auto-augment string")
    jsd: bool | None = _opt(None, "JSD consistency loss over clean + mixed views (default: on for augmix/dynmix)")
    jsd_weight: float = _opt(12.0, "weight of the JSD term (AugMix's 12)")
    num_mixes: int | None = _opt(None, "mixed views per image for JSD (default 2; 1 = single-view ablation)")
    aug_device: str = _opt("auto", "step (batched, inside the training step: dynmix, augmix), loader (per image, "
                                   "DataLoader workers) or auto (step for dynmix and the official augmix, else "
                                   "loader); model = step")
    mixup_alpha: float = _opt(1.0, "alpha of the Beta distribution of --aug mixup")
    cutmix_alpha: float = _opt(1.0, "alpha of the Beta distribution of --aug cutmix")
    smoothing: float = _opt(0.0, "label smoothing")
    crop_padding: int | None = _opt(None, "zero padding of the random crop of small images (default: size // 8, 4 px "
                                         "at 32 px)")
    # optimization
    epochs: int = _opt(8, "training epochs")
    batch_size: int = _opt(64, "images per process and step (each yields 1 + num_mixes views with JSD)")
    lr: float = _opt(0.1, "learning rate (per --lr-base-batch-size images when that is set)")
    opt: str = _opt("sgd", "optimizer name for timm's create_optimizer_v2 (sgd is Nesterov SGD, adamw, ...)")
    momentum: float = _opt(0.9, "optimizer momentum")
    weight_decay: float = _opt(5e-4, "weight decay")
    filter_bias_and_bn: bool = _opt(True, "no weight decay on biases and normalization weights")
    sched: str = _opt("cosine", "learning-rate schedule for timm's create_scheduler_v2, stepped per update")
    min_lr: float = _opt(1e-6, "learning rate at the end of the schedule")
    warmup_epochs: int = _opt(0, "epochs of linear learning-rate warm-up")
    warmup_lr: float = _opt(1e-5, "learning rate at the start of the warm-up")
    lr_base_batch_size: int | None = _opt(None, "scale --lr by the global batch over N images (default: unscaled)")
    grad_accum_steps: int = _opt(1, "batches accumulated per optimizer step")
    clip_grad: float | None = _opt(None, "clip the gradient norm to this value (default: no clipping)")
    model_ema: bool = _opt(False, "keep an exponential moving average of the weights (timm's ModelEmaV3); "
                                  "evaluation, the results and the saved model then use the averaged weights (the raw "
                                  "model's top-1 is reported as raw_clean_top1)")
    model_ema_decay: float = _opt(0.9998, "decay of the weight average per optimizer step (the maximum with "
                                          "--model-ema-warmup)")
    model_ema_warmup: bool = _opt(False, "ramp the decay up from 0 as timm does (1 - (1 + step)^(-2/3), capped by "
                                         "the decay)")
    mixed_precision: str | None = _opt(None, "no, fp16, bf16 (passed to Accelerate); default: bf16 on CPUs with "
                                             "native bf16 (AVX512_BF16 or AMX), else no")
    channels_last: bool | None = _opt(None, "channels-last memory format for the model and batches (default: on with "
                                            "bf16 on CPU)")
    data_in_memory: bool | None = _opt(None, "decode the training set once into a uint8 tensor and crop/flip batches "
                                             "in the step (default: on for small images that fit in 2 GiB, with "
                                             "augmentations the step can do)")
    # run
    seed: int = _opt(0, "seed of the shuffle, the augmentations and the weights")
    output_dir: str = _opt("output", "folder for the model, its card, results.json and checkpoints")
    num_workers: int | None = _opt(None, "DataLoader worker processes (default: the usable cores per process minus 1, "
                                        "between 1 and 4)")
    num_threads: int | None = _opt(None, "compute threads per process on CPU (default: the usable cores / processes; "
                                         "on a CPU shared with other jobs, fewer threads can be much faster)")
    checkpoint_every: int | None = _opt(None, "also save a checkpoint every N optimizer steps")
    keep_checkpoints: int = _opt(2, "how many of the newest checkpoints to keep")
    resume: str | None = _opt(None, "checkpoint folder, or 'latest' to continue from the newest one in output-dir")
    eval_every: int = _opt(1, "evaluate every N epochs (and after the last)")
    tta_flip: bool = _opt(False, "also report clean_top1_tta_flip: eval top-1 of the mean logits of each image and "
                                 "its mirror (test-time augmentation; clean_top1 never uses it)")
    report_to: str | None = _opt(None, "tracker for Accelerate's log_with: tensorboard, wandb, ...")
    deterministic: bool = _opt(False, "deterministic algorithms only (bit-identical resume on CPU; slower)")
    max_steps: int | None = _opt(None, "stop after this many optimizer steps (for smoke tests)")
    push_to_hub: str | None = _opt(None, "repo id to push the final model and card to (token from HF_TOKEN or the "
                                         "HF login)")
    diagnostics: bool = _opt(False, "record cross-rank checks in results.json: each rank's weight checksum "
                                    "(rank_weight_checksums) and whether the ranks' sampler shards are disjoint "
                                    "(shards_disjoint); gathered once at the end of the run")

    # the parsed --aug (:attr:`spec`): not an option (no flag, not in recipes or to_dict()); carried over by
    # dataclasses.replace, so that the string is parsed once per run
    _aug_spec: AugSpec | None = field(default=None, repr=False, compare=False)

    def validate(self) -> None:
        """Refuse bad values and invalid combinations before anything is loaded or trained.

        The augmentation (``aug``, ``num_mixes``, ``aug_device``) is parsed and checked once, into :attr:`spec`.
        """
        spec = self.spec  # raises for a bad --aug, --num-mixes or --aug-device
        name = spec.name
        check_output_dir(self.output_dir)
        if self.jsd and not spec.has_views:
            raise ValueError(f"--jsd needs augmented views from augmix, dynmix or prime; --aug {self.aug} gives none "
                             f"(use --no-jsd, or --aug dynmix / augmix)")
        if spec.family == "prime" and spec.params.jsd_weight != self.jsd_weight:
            raise ValueError(f"--aug {self.aug} sets the JSD weight j{spec.params.jsd_weight:g} but --jsd-weight is "
                             f"{self.jsd_weight:g}: the trainer's loss takes --jsd-weight; give it there")
        if self.stem not in (None, "learned", "whitened"):
            raise ValueError(f"--stem must be 'learned' or 'whitened', got {self.stem!r}")
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
            from timm_dynmix.hub.push import check_repo_id

            check_repo_id(self.push_to_hub)  # a typo fails now, not after training
        if self.report_to is not None and not isinstance(self.report_to, str):
            raise ValueError(f"--report-to must be a tracker name (tensorboard, wandb, ...), got {self.report_to!r}")

    @property
    def spec(self) -> AugSpec:
        """The augmentation, parsed and validated (:func:`~timm_dynmix.augment.spec.create_aug_spec` of ``aug``,
        ``num_mixes`` and ``aug_device``).

        Parsed on first use and kept (``dataclasses.replace`` carries it over); parsed again only when ``aug``
        changes. A changed ``num_mixes`` or ``aug_device`` adjusts the kept spec without parsing.

        Raises:
            TypeError, ValueError: as :func:`~timm_dynmix.augment.spec.create_aug_spec`.
        """
        spec = self._aug_spec
        if spec is None or spec.source != self.aug:
            spec = create_aug_spec(self.aug, num_mixes=self.num_mixes, device=self.aug_device)
        else:
            if self.num_mixes is not None and spec.has_views and spec.views != self.num_mixes:
                spec = spec.with_views(self.num_mixes)
            if self.aug_device != "auto" and spec.device != ("step" if self.aug_device == "model" else self.aug_device):
                spec = spec.with_device(self.aug_device)
        self._aug_spec = spec
        return spec

    @property
    def aug_name(self) -> str:
        """The augmentation family as ``results.json`` records it: none, mixup, cutmix, autoaugment,
        random-autoaugment, augmix, dynmix or prime (:attr:`AugSpec.name <timm_dynmix.augment.spec.AugSpec.name>`).

        ``augmix`` covers the official AugMix and timm's; ``autoaugment`` covers AA* and timm's policies and
        RandAugment.
        """
        return self.spec.name

    @property
    def step_family(self) -> str | None:
        """The :data:`STEP_AUGMENTATIONS` family of ``--aug`` (None: it runs per image, in the loader only)."""
        return self.spec.step_family

    @property
    def has_views(self) -> bool:
        """Whether the augmentation makes views (AugMix, DynMix, PRIME) that the JSD loss can compare."""
        return self.spec.has_views

    @property
    def use_jsd(self) -> bool:
        """Whether the run trains with the JSD loss (default: whenever there are views)."""
        return self.has_views if self.jsd is None else bool(self.jsd)

    @property
    def mixes(self) -> int:
        """Mixed views per image: ``num_mixes``, else the DynMix config's, else 2."""
        spec = self.spec
        if spec.has_views:
            return spec.views
        return self.num_mixes if self.num_mixes is not None else 2

    @property
    def aug_string(self) -> str | None:
        """The canonical augmentation string for the transform, or None.

        A DynMix or official AugMix config in canonical form, ``autoaugment[-cifar10|-imagenet]`` or
        ``random-autoaugment`` (AA*, Random AA*), or a timm string (``augmix-timm`` gives ``augmix-m3-w3``).
        """
        return self.spec.transform_string

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (what ``config.yaml`` and ``results.json`` record; ``aug`` as its string)."""
        return {f.name: getattr(self, f.name) for f in option_fields()}


def option_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The :class:`TrainConfig` fields that are options (flags, recipe keys): all but the private parsed spec."""
    return tuple(f for f in fields(TrainConfig) if not f.name.startswith("_"))


def check_aug(aug: str) -> AugSpec:
    """Refuse an ``--aug`` the trainer does not accept, or one whose config string is invalid (each family's parser
    names the bad part and the allowed range); shared by ``train`` and ``preview``.

    Returns:
        The parsed :class:`~timm_dynmix.augment.spec.AugSpec` (:func:`~timm_dynmix.augment.spec.create_aug_spec`).

    Raises:
        TypeError: ``aug`` is not a string.
        ValueError: unknown augmentation or invalid config string.
    """
    if not isinstance(aug, str):
        raise TypeError(f"--aug must be a string, got {aug!r} ({type(aug).__name__})")
    return create_aug_spec(aug)


def check_output_dir(output_dir: str | os.PathLike[str]) -> None:
    """Refuse an output folder that is an existing file, or lies under one, before anything is loaded.

    Raises:
        ValueError: naming the file in the way.
    """
    path = Path(output_dir)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "not a folder" if p == path else "so no folder can be made under it"
            raise ValueError(f"--output-dir {output_dir}: {p} is an existing file, {what}; choose another "
                             f"--output-dir or move the file")
        if p.is_dir():
            return


def field_types() -> dict[str, type]:
    """Each :class:`TrainConfig` field's value type, ``Optional`` removed (``int | None`` gives ``int``).

    Read from the type hints (:func:`typing.get_type_hints`), not from the annotation strings.
    """
    found = {}
    hints = typing.get_type_hints(TrainConfig)
    for name in (f.name for f in option_fields()):
        hint = hints[name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"TrainConfig.{name}: one type or an optional one expected, got {hint}")
            hint = args[0]
        found[name] = hint
    return found


def field_help(name: str) -> str | None:
    """The help text of field ``name`` (its ``metadata["help"]``), None when it has none."""
    return TrainConfig.__dataclass_fields__[name].metadata.get("help")


def field_default(name: str) -> Any:
    """The default value of field ``name``."""
    f = TrainConfig.__dataclass_fields__[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is dataclasses.MISSING:
        raise ValueError(f"TrainConfig.{name} has no default")
    return f.default_factory()


def load_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML recipe: a mapping of :class:`TrainConfig` field names to values.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if it is not valid YAML, not a mapping, or has keys that are not fields.
    """
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
    known = {f.name for f in option_fields()}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"recipe {path} has unknown keys {unknown}; known: {sorted(known)}")
    return data


def config_from_args(args: argparse.Namespace | dict[str, Any]) -> TrainConfig:
    """Defaults <- YAML recipe (``config``) <- explicitly given flags; validated.

    Raises:
        ValueError: for an unknown option, a string where a number or a flag is expected, or an invalid value.
    """
    given = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    values: dict[str, Any] = {}
    recipe = given.pop("config", None)
    if recipe:
        values.update(load_recipe(recipe))
    values.update({k: v for k, v in given.items() if v is not None})
    kinds = field_types()
    for key, value in list(values.items()):
        if key not in kinds:
            raise ValueError(f"unknown training option {key!r}")
        kind = kinds[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        if kind in (int, float, bool) and isinstance(value, str):
            raise ValueError(f"option {key} must be {'an' if kind is int else 'a'} {kind.__name__}, got {value!r}")
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg
