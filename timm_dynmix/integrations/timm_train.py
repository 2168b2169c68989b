"""``--aug dynmix`` for existing timm train scripts: ``timm-dynmix timm-train PATH/TO/train.py --aug dynmix ...``.

timm's ``train.py`` is not part of the timm wheel: people copy it from the timm repository and keep their command
lines and YAML configs. This launcher runs such a script unchanged, with DynMix:

1. it checks that the installed timm still has the names it patches (and says which versions are known to work);
2. it reads the script's arguments (``--flag value``, ``--flag=value`` and the YAML file of ``-c/--config``) and
   rewrites ``--aug dynmix[-<config>]`` into timm's own flags ``--aa <canonical config> --aug-splits <1 + n>
   --jsd-loss --smoothing 0``, leaving out each flag the user set; a set that contradicts the config is refused
   before the script starts, as is an invalid config;
3. it registers DynMix config strings with timm (:func:`timm_dynmix.register_timm`) and puts
   :class:`JsdCrossEntropy` (our log-space :class:`timm_dynmix.JsdLoss` with timm's signature) in place of
   ``timm.loss.JsdCrossEntropy`` in every timm module that binds that name; ``--jsd-weight W``, a launcher flag
   removed before the script sees it, sets the weight that timm's train.py has no flag for;
4. it runs the script with :func:`runpy.run_path` as ``__main__`` with ``sys.argv`` set as the script expects, so
   that its argparse, YAML config, distributed launch (``torchrun -m timm_dynmix.timm_train train.py ...``) and
   checkpointing work as they do without the launcher.

Batched augmentations (``--aug augmix``, the official AugMix as :class:`timm_dynmix.AugMixBatch`; PRIME plugs into
:data:`BATCHED_AUGMENTATIONS`): ``--aug augmix[-<config>]`` becomes ``--aug-splits <1 + n> --jsd-loss --smoothing 0``
(no ``--aa``), and while the script runs, ``timm.data.create_loader`` builds its training loader without per-image
augmentation (crop + flip only, no colour jitter, the uint8 batches of timm's prefetcher) and wraps it: every batch
goes to the device, gets its views there in one batched call (split-major ``[clean, mix_1, ...]``, normalized with
the prefetcher's mean and std) and its targets repeated, what ``AugMixDataset`` + the prefetcher would give. The
views come from one generator on the device seeded from ``torch.initial_seed()`` when the loader is built (timm's
train.py seeds torch with seed + rank first). It needs the prefetcher (timm's default) and no random erasing.

Mixup/CutMix cannot be combined with augmentation splits: timm's train.py refuses it with the prefetcher (its
collate cannot de-interleave the splits), and without the prefetcher it would mix images across splits. The
launcher refuses ``--aug dynmix`` (or a batched ``--aug``) together with ``--mixup``/``--cutmix``/``--cutmix-minmax``
up front.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import runpy
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from timm_dynmix.augment.config import DynMixConfig, is_dynmix, parse_config
from timm_dynmix.augment.spec import create_aug_spec
from timm_dynmix.loss import JsdLoss, timm_jsd_arguments

__all__ = ["TimmTrainArgs", "JsdCrossEntropy", "rewrite_args", "check_timm", "timm_patched", "launch",
           "prepare", "execute", "PROG", "BATCHED_AUGMENTATIONS", "batched_loader_patched", "BatchedViewsLoader"]

PROG = "timm-dynmix timm-train"

# flags of timm's train.py the launcher reads -> their argparse dest (also the key in a YAML config)
_TIMM_FLAGS = {"--aa": "aa", "--aug-splits": "aug_splits", "--jsd-loss": "jsd_loss", "--smoothing": "smoothing",
               "--mixup": "mixup", "--cutmix": "cutmix", "--cutmix-minmax": "cutmix_minmax"}
# the launcher's own flags, removed from the script's arguments
_OWN_FLAGS = {"--aug": "aug", "--jsd-weight": "jsd_weight"}
_SWITCHES = {"--jsd-loss"}  # store_true: no value
_MULTI = {"--cutmix-minmax"}  # nargs='+'
_CONFIG = "--config"

#: ``--aug`` families the launcher runs batched on the device (see the module docstring): the name ``--aug`` starts
#: with -> the class as "module:name", built as ``cls(aug, num_mixes=n)`` (the call convention of AugMixBatch).
BATCHED_AUGMENTATIONS = {
    "augmix": "timm_dynmix.augment.augmix_batch:AugMixBatch",
    "prime": "timm_dynmix.augment.prime:PrimeBatch",
}


@dataclass(frozen=True)
class TimmTrainArgs:
    """The outcome of :func:`rewrite_args`.

    Attributes:
        argv: The script's arguments after rewriting (``sys.argv[1:]`` of the script).
        added: The flags (with values) the launcher added, in order.
        config: The DynMix config in effect (from ``--aug``, or from a ``dynmix`` ``--aa``), else None.
        jsd_weight: The weight given with ``--jsd-weight`` (or ``jsd_weight`` in the YAML), else None.
        notes: Things the user should know about the choice made (e.g. JSD switched off in their YAML).
        batched: The batched augmentation's config string (``--aug augmix...``), else None.
        num_mixes: Its mixed views per image (``--aug-splits`` - 1), else None.
    """

    argv: tuple[str, ...]
    added: tuple[str, ...] = ()
    config: DynMixConfig | None = None
    jsd_weight: float | None = None
    notes: tuple[str, ...] = ()
    batched: str | None = None
    num_mixes: int | None = None


class JsdCrossEntropy(JsdLoss):
    """:class:`timm_dynmix.JsdLoss` with timm's signature: what ``timm.loss.JsdCrossEntropy`` is while
    :func:`timm_patched` is active (and what a copy of timm's ``train.py`` can import under timm's name).

    ``JsdCrossEntropy(num_splits=3, alpha=12, smoothing=0.1)`` takes timm's arguments and defaults (``alpha`` is
    the weight of the consistency term, ``smoothing=None`` means none) and computes timm's loss in log space. The
    weight set by ``--jsd-weight`` (the class attribute ``jsd_weight``), when not None, replaces ``alpha``: timm's
    train.py always calls ``JsdCrossEntropy(num_splits=..., smoothing=...)`` and has no flag for alpha.
    """

    jsd_weight: ClassVar[float | None] = None

    def __init__(self, num_splits: int = 3, alpha: float = 12, smoothing: float | None = 0.1):
        super().__init__(**timm_jsd_arguments(num_splits, alpha if self.jsd_weight is None else self.jsd_weight,
                                              smoothing))


# ----------------------------------------------------------------------------------------------------------------
# argument rewriting


@dataclass
class _Scan:
    kept: list[str]
    values: dict[str, Any]  # dest -> last value on the command line (True for switches, a list for nargs='+')
    config: str | None = None
    aug_at: int | None = None  # index in ``kept`` where the last --aug was


def _scan(argv: Sequence[str]) -> _Scan:
    """Find the flags the launcher reads, the way the script's argparse would (last occurrence wins)."""
    known = {**_TIMM_FLAGS, **_OWN_FLAGS}
    out = _Scan(kept=[], values={})
    i, n = 0, len(argv)
    value: str | bool | list[str]  # a flag's value: its text, True for a switch, the list of an nargs='+' flag
    while i < n:
        tok = str(argv[i])
        if tok == "--":  # everything after is positional
            out.kept.extend(str(a) for a in argv[i:])
            break
        name, eq, inline = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        if tok == "-c" or (tok.startswith("-c") and not tok.startswith("--")) or (
                name.startswith("--") and len(name) >= 3 and _CONFIG.startswith(name)):
            # -c FILE, -cFILE, -c=FILE, --config FILE, --config=FILE and the abbreviations argparse accepts
            if tok.startswith("-c") and tok != "-c":
                value, step = tok[3:] if tok.startswith("-c=") else tok[2:], 1
            elif eq:
                value, step = inline, 1
            else:
                if i + 1 >= n:
                    raise ValueError(f"{tok} needs a YAML file")
                value, step = str(argv[i + 1]), 2
            out.config = value
            out.kept.extend(str(a) for a in argv[i:i + step])
            i += step
            continue
        if not name.startswith("--") or name not in known:
            if name.startswith("--") and len(name) >= 3:
                longer = sorted(f for f in known if f.startswith(name))
                if longer:
                    raise ValueError(f"{name} abbreviates {' / '.join(longer)}: spell the flag out in full when "
                                     f"running a script with {PROG}, which reads it")
            out.kept.append(tok)
            i += 1
            continue
        dest = known[name]
        if name in _SWITCHES:
            if eq:
                raise ValueError(f"{name} is a switch and takes no value, got {tok!r}")
            value, step = True, 1
        elif eq:
            value, step = inline, 1
        elif name in _MULTI:
            step = 1
            while i + step < n and (not str(argv[i + step]).startswith("-") or _is_number(argv[i + step])):
                step += 1
            value = [str(a) for a in argv[i + 1:i + step]]
            if not value:
                raise ValueError(f"{name} needs at least one value")
        else:
            if i + 1 >= n:
                example = " (e.g. --aug dynmix or --aug dynmix-m3-n2)" if name == "--aug" else ""
                raise ValueError(f"{name} needs a value{example}")
            value, step = str(argv[i + 1]), 2
        if value == "":
            raise ValueError(f"{name} needs a value, got an empty one")
        out.values[dest] = value
        if name in _OWN_FLAGS:
            if dest == "aug":
                out.aug_at = len(out.kept)
        else:
            out.kept.extend(str(a) for a in argv[i:i + step])
        i += step
    return out


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"-c/--config: no YAML file at {path!r}")
    try:
        cfg = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"-c/--config: {path!r} is not valid YAML: {e}") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f"-c/--config: {path!r} must hold a mapping of argument names to values, "
                         f"got a {type(cfg).__name__}")
    return cfg


def _flag(dest: str) -> str:
    return next(f for f, d in {**_TIMM_FLAGS, **_OWN_FLAGS}.items() if d == dest)


def _to_int(dest: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{_flag(dest)} must be an integer, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_flag(dest)} must be an integer, got {value!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"{_flag(dest)} must be an integer, got {value!r}")
    return int(number)


def _to_float(dest: str, value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{_flag(dest)} must be a finite number, got {value!r}")
    return number


def _to_bool(dest: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{dest} in the YAML config must be true or false, got {value!r}")
    return value


def _config_of(flag: str, text: Any) -> DynMixConfig:
    try:
        return parse_config(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{flag} {text}: {e}") from None


def rewrite_args(argv: Sequence[str]) -> TimmTrainArgs:
    """Rewrite a timm train.py command line with ``--aug dynmix[-<config>]`` into timm's own flags.

    Values the user set, on the command line (``--flag value`` or ``--flag=value``) or in the YAML file of
    ``-c/--config`` (the command line wins, as in timm's train.py), are kept. ``--aug`` adds those of ``--aa
    <canonical config>``, ``--aug-splits <1 + num_mixes>``, ``--jsd-loss`` and ``--smoothing 0`` the user did not
    set, where ``--aug`` was. ``--aug`` and ``--jsd-weight`` are removed. A ``dynmix`` ``--aa`` is validated too.

    Args:
        argv: The arguments meant for the script (without the script path).

    Returns:
        The rewritten arguments, what was added, the DynMix config and JSD weight in effect.

    Raises:
        ValueError: for an invalid DynMix config, a set of flags that contradicts it (another ``--aa``, a
            different ``--aug-splits``, Mixup/CutMix with splits, ``--jsd-weight`` without the JSD loss), a bad
            value, or an abbreviated flag the launcher needs to read.
        FileNotFoundError: when the YAML file of ``-c`` does not exist.
        TypeError: when ``argv`` is a string or not a sequence.
    """
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        raise TypeError(f"argv must be a sequence of strings, got {type(argv).__name__}")
    scan = _scan(argv)
    yaml_cfg = _read_yaml(scan.config) if scan.config is not None else {}

    def user(dest: str) -> Any:
        """The value the user gave (command line first, then YAML), or None."""
        if dest in scan.values:
            return scan.values[dest]
        return yaml_cfg.get(dest)

    aug, aa = user("aug"), user("aa")
    splits = None if user("aug_splits") is None else _to_int("aug_splits", user("aug_splits"))
    jsd = user("jsd_loss")
    if jsd is not None and "jsd_loss" not in scan.values:
        jsd = _to_bool("jsd_loss", jsd)
    aa_config = _config_of("--aa", aa) if aa is not None and is_dynmix(aa) else None

    added: list[str] = []
    notes: list[str] = []
    config = aa_config
    batched, num_mixes = None, None
    family = _batched_family(aug)
    if family is not None:
        _batched_class(family)(aug, num_mixes=1)  # validates the config: ValueError naming the key and range
        if aa is not None:
            raise ValueError(f"--aa {aa} conflicts with --aug {aug}: both choose the training augmentation. Drop "
                             f"--aa (the launcher runs {aug} batched on the device) or drop --aug")
        if splits is None:
            num_mixes = 2
            added += ["--aug-splits", "3"]
        elif not 2 <= splits <= 9:
            raise ValueError(f"--aug-splits {splits} with --aug {aug}: give 2 to 9 splits (the clean view + 1 to 8 "
                             f"mixed views), or drop --aug-splits for 3")
        else:
            num_mixes = splits - 1
        batched = aug
    if aug is not None and family is None:
        if not is_dynmix(aug):
            raise ValueError(f"--aug takes a DynMix config ('dynmix' or 'dynmix-<sections>', e.g. dynmix-m3-n2) "
                             f"or a batched augmentation ({', '.join(BATCHED_AUGMENTATIONS)}, e.g. augmix or "
                             f"augmix-m3-w3-d-1-a1), got {aug!r}; for timm's own augmentations use --aa without --aug")
        try:
            spec = create_aug_spec(aug)  # parsed once: the config and the keys the string gives
        except (ValueError, TypeError) as e:
            raise ValueError(f"--aug {aug}: {e}") from None
        config = spec.params
        canonical = str(config)
        if not spec.gives_ops:  # leave the op set to the hook, which picks it from timm's image size
            canonical = "-".join(part for part in canonical.split("-") if not part.startswith("o"))
            notes.append("no op set in --aug (key o): DynMix takes the imagenet set (with downscale) for images "
                         "above 64 px and the cifar set otherwise, from the image size timm's train.py builds")
        num_splits = 1 + config.num_mixes
        if aa is not None and aa_config is None:
            raise ValueError(f"--aa {aa} conflicts with --aug {aug}: both choose the training augmentation. "
                             f"Drop --aa (the launcher sets --aa {canonical}) or drop --aug")
        if aa_config is not None and aa_config != config:
            raise ValueError(f"--aa {aa} ({aa_config}) and --aug {aug} ({canonical}) are different DynMix "
                             f"configs; give only one of them")
        if aa is None:
            added += ["--aa", canonical]
        if splits is None:
            added += ["--aug-splits", str(num_splits)]
        elif splits != num_splits:
            fix = (f"write n{splits - 1} in the config for {splits} splits" if 2 <= splits <= 9 else
                   "for DynMix without splits and without the JSD loss, give --aa dynmix... instead of --aug")
            raise ValueError(
                f"--aug-splits {splits} conflicts with --aug {aug}: the config has n{config.num_mixes} "
                f"({config.num_mixes} mixed view(s) + the clean view = {num_splits} splits). Drop --aug-splits, or "
                f"{fix}")
    if aug is not None:
        if jsd is None:
            added.append("--jsd-loss")
            jsd = True
        elif jsd is False:
            what = "DynMix" if family is None else aug
            notes.append(f"jsd_loss is false in the YAML config: training on the clean and {what} splits without "
                         "the JSD consistency loss")
        if user("smoothing") is None:
            added += ["--smoothing", "0"]
        mix = [f for f, d in (("--mixup", "mixup"), ("--cutmix", "cutmix")) if user(d) is not None
               and _to_float(d, user(d)) > 0]
        if user("cutmix_minmax") is not None:
            mix.append("--cutmix-minmax")
        if mix:
            raise ValueError(
                f"{' / '.join(mix)} cannot be combined with --aug {aug}: Mixup/CutMix does not work with "
                f"augmentation splits in timm's train.py (it refuses them with the prefetcher, whose collate cannot "
                f"de-interleave splits, and without it would mix images across splits). Drop {' / '.join(mix)}")
    elif config is not None and splits is not None and splits >= 2 and splits != 1 + config.num_mixes:
        raise ValueError(f"--aug-splits {splits} does not match --aa {aa}: the config has n{config.num_mixes}, "
                         f"i.e. {1 + config.num_mixes} splits (clean + mixed views); make them agree")

    weight = user("jsd_weight")
    if weight is not None:
        weight = _to_float("jsd_weight", weight)
        if weight < 0:
            raise ValueError(f"--jsd-weight must be >= 0, got {weight:g}")
        if jsd is not True:
            raise ValueError("--jsd-weight sets the weight of the JSD consistency loss, which is off: use it with "
                             "--aug dynmix, or with --jsd-loss and --aug-splits")

    kept = list(scan.kept)
    at = scan.aug_at
    if at is None:
        at = kept.index("--") if "--" in kept else len(kept)
    return TimmTrainArgs(argv=tuple(kept[:at] + added + kept[at:]), added=tuple(added), config=config,
                         jsd_weight=weight, notes=tuple(notes), batched=batched, num_mixes=num_mixes)


def _batched_family(aug: Any) -> str | None:
    """The :data:`BATCHED_AUGMENTATIONS` family an ``--aug`` value names (by its first section), else None.

    Not :class:`~timm_dynmix.augment.spec.AugSpec`'s family on purpose: the launcher's ``--aug`` runs timm-grammar
    AugMix strings (``augmix-m3-w3-d-1-a1``) batched with :class:`AugMixBatch`, where the trainer's ``--aug`` means
    timm's own per-image AugMix (family ``augmix-timm``).
    """
    if not isinstance(aug, str):
        return None
    head = aug.strip().split("-")[0]
    head = "augmix" if head in ("augmix", "augmix_official") else head
    return head if head in BATCHED_AUGMENTATIONS else None


def _batched_class(family: str) -> type:
    import importlib

    module, name = BATCHED_AUGMENTATIONS[family].split(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------------------------------------
# compatibility and patches


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else ()


def check_timm() -> str:
    """Check that the installed timm has what the launcher patches and wraps; return its version.

    Raises:
        RuntimeError: if timm moved ``timm.loss.JsdCrossEntropy`` (or changed its arguments), ``AugMixDataset``
            or the auto-augment dispatch; the message names the timm versions known to work.

    Warns:
        UserWarning: for a timm version outside the tested range whose names are all in place.
    """
    from timm_dynmix.integrations.timm import TIMM_KNOWN_GOOD, TIMM_TESTED

    version = _check_names()
    low, high = (_version_tuple(v) for v in TIMM_TESTED)
    if not low <= _version_tuple(version) <= high:
        warnings.warn(f"timm {version} is outside the versions {PROG} was tested with ({TIMM_KNOWN_GOOD}); the "
                      f"names it patches are in place, so it goes on", UserWarning, stacklevel=2)
    return version


def _check_names() -> str:
    """The checks of :func:`check_timm` without the version warning; returns the version."""
    import timm

    from timm_dynmix.integrations.timm import TIMM_KNOWN_GOOD, TIMM_TESTED, _factory_module

    version = getattr(timm, "__version__", "unknown")
    fix = (f"{PROG} knows timm {TIMM_KNOWN_GOOD}: install one of those (pip install 'timm>={TIMM_TESTED[0]},"
           f"<={TIMM_TESTED[1]}') or edit your train.py as the README describes")
    problems = []
    try:
        import timm.data
        import timm.loss
        import timm.loss.jsd
    except ImportError as e:
        raise RuntimeError(f"timm {version} has no {e.name}; {fix}") from e
    cls = vars(timm.loss.jsd).get("JsdCrossEntropy")
    if getattr(timm.loss, "JsdCrossEntropy", None) is not cls or not isinstance(cls, type):
        problems.append("timm.loss.JsdCrossEntropy (expected it defined in timm.loss.jsd)")
    elif list(inspect.signature(cls).parameters)[:3] != ["num_splits", "alpha", "smoothing"]:
        problems.append(f"the arguments of timm.loss.JsdCrossEntropy (expected num_splits, alpha, smoothing; got "
                        f"{', '.join(inspect.signature(cls).parameters)})")
    if not hasattr(timm.data, "AugMixDataset"):
        problems.append("timm.data.AugMixDataset")
    if problems:
        raise RuntimeError(f"timm {version} moved {'; '.join(problems)}. {fix}")
    _factory_module()  # RuntimeError naming the versions if the auto-augment dispatch moved
    return version


@contextmanager
def timm_patched(jsd_weight: float | None = None) -> Iterator[type]:
    """Register DynMix with timm and put :class:`JsdCrossEntropy` in place of timm's, for the ``with`` block.

    Every loaded timm module that binds timm's ``JsdCrossEntropy`` (``timm.loss``, ``timm.loss.jsd``, timm's loss
    factory...) gets ours, so ``from timm.loss import JsdCrossEntropy`` in a script run inside the block gets it.
    Everything is restored on exit (``register_timm`` only if it was not in effect before).

    Args:
        jsd_weight: Weight of the consistency term that replaces timm's ``alpha``; None keeps ``alpha``.

    Yields:
        The class now bound as ``timm.loss.JsdCrossEntropy``.
    """
    if jsd_weight is not None and (isinstance(jsd_weight, bool) or not isinstance(jsd_weight, (int, float))
                                   or not math.isfinite(jsd_weight) or jsd_weight < 0):
        raise ValueError(f"jsd_weight must be a finite number >= 0 or None, got {jsd_weight!r}")
    _check_names()
    import timm.loss.jsd

    from timm_dynmix.integrations.timm import is_registered, register_timm, unregister_timm

    was_registered = is_registered()
    register_timm()
    original = vars(timm.loss.jsd)["JsdCrossEntropy"]
    patched = []
    for name, module in list(sys.modules.items()):
        if (name == "timm" or name.startswith("timm.")) and module is not None \
                and vars(module).get("JsdCrossEntropy") is original:
            setattr(module, "JsdCrossEntropy", JsdCrossEntropy)  # noqa: B010  (ModuleType declares no such attribute)
            patched.append(module)
    previous_weight = JsdCrossEntropy.jsd_weight
    JsdCrossEntropy.jsd_weight = None if jsd_weight is None else float(jsd_weight)
    try:
        yield JsdCrossEntropy
    finally:
        JsdCrossEntropy.jsd_weight = previous_weight
        for module in patched:
            setattr(module, "JsdCrossEntropy", original)  # noqa: B010  (ModuleType declares no such attribute)
        if not was_registered:
            unregister_timm()


# ----------------------------------------------------------------------------------------------------------------
# batched augmentations: timm's training loader without per-image augmentation, views made on the device


class BatchedViewsLoader:
    """Wraps the training loader timm's ``create_loader`` returns (a ``PrefetchLoader`` over uint8 batches).

    Each uint8 batch goes to the loader's device, where ``aug.views`` makes the normalized split-major
    ``[clean, mix_1, ..., mix_N]`` batch in one batched call (the prefetcher's mean and std, its image dtype);
    the targets are repeated ``1 + N`` times, as ``AugMixDataset`` + ``fast_collate`` order them. Everything else
    (``sampler``, ``len``, ``mixup_enabled``...) is the wrapped loader's.

    Args:
        prefetcher: timm's ``PrefetchLoader`` (``loader``, ``mean``, ``std``, ``device``, ``img_dtype``).
        aug: A batched augmentation with ``views(x, mean, std, generator=...)`` (``AugMixBatch``, ``PrimeBatch``).
        seed: Seed of the views' generator (on the device).
    """

    def __init__(self, prefetcher: Any, aug: Any, seed: int):
        import torch

        self.prefetcher = prefetcher
        self.device = torch.device(prefetcher.device)
        self.aug = aug.to(self.device)
        channels = prefetcher.mean.numel()
        self.mean = tuple(float(v) / 255.0 for v in prefetcher.mean.flatten().tolist())[:channels]
        self.std = tuple(float(v) / 255.0 for v in prefetcher.std.flatten().tolist())[:channels]
        self.img_dtype = getattr(prefetcher, "img_dtype", None) or torch.float32
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for x, y in self.prefetcher.loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            views = self.aug.views(x, self.mean, self.std, generator=self.generator)
            yield views.to(self.img_dtype), y.repeat(self.aug.num_splits)

    def __len__(self) -> int:
        return len(self.prefetcher)

    def __getattr__(self, name: str) -> Any:
        if name == "prefetcher":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.prefetcher, name)


@contextmanager
def batched_loader_patched(aug: str | None, num_mixes: int | None) -> Iterator[None]:
    """While active, ``timm.data.create_loader(..., is_training=True)`` makes batched ``aug`` views on the device.

    The training loader is built by timm without per-image augmentation (``AugMixDataset`` unwrapped,
    ``num_aug_splits=0``, no ``auto_augment``, no colour jitter): random resized crop + flip into uint8 batches;
    then :class:`BatchedViewsLoader` wraps it. Evaluation loaders are timm's. Nothing is patched for ``aug=None``.

    Raises (when the script builds its training loader):
        ValueError: without the prefetcher (``--no-prefetcher``: the batches are normalized floats, not uint8) or
            with random erasing (``--reprob`` > 0), which the wrapped loader cannot apply after the views.
    """
    if aug is None:
        yield
        return
    import timm.data
    import timm.data.loader
    import torch

    family = _batched_family(aug)
    if family is None:
        raise ValueError(f"--aug {aug} names no batched augmentation; batched: {', '.join(BATCHED_AUGMENTATIONS)}")
    cls = _batched_class(family)
    original = timm.data.loader.create_loader

    def create_loader(dataset: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("is_training", False):
            return original(dataset, *args, **kwargs)
        if not kwargs.get("use_prefetcher", True):
            raise ValueError(f"--aug {aug} makes its views from the prefetcher's uint8 batches: drop --no-prefetcher")
        if float(kwargs.get("re_prob", 0.0) or 0.0) > 0:
            raise ValueError(f"--aug {aug} cannot be combined with random erasing (--reprob): drop --reprob")
        if isinstance(dataset, timm.data.AugMixDataset):
            dataset = dataset.dataset
        kwargs.update(num_aug_splits=0, auto_augment=None, color_jitter=None)
        loader = original(dataset, *args, **kwargs)
        return BatchedViewsLoader(loader, cls(aug, num_mixes=num_mixes), torch.initial_seed())

    create_loader.__wrapped__ = original  # type: ignore[attr-defined]
    bound = [m for m in (timm.data, timm.data.loader) if getattr(m, "create_loader", None) is original]
    for module in bound:
        setattr(module, "create_loader", create_loader)  # noqa: B010  (ModuleType declares no such attribute)
    try:
        yield
    finally:
        for module in bound:
            setattr(module, "create_loader", original)  # noqa: B010  (ModuleType declares no such attribute)


# ----------------------------------------------------------------------------------------------------------------
# running the script


def prepare(script: str | os.PathLike[str], argv: Sequence[str]) -> tuple[Path, TimmTrainArgs]:
    """Check the script and timm, and rewrite the arguments; nothing runs yet (see :func:`launch`).

    Raises:
        FileNotFoundError, ValueError, RuntimeError: as :func:`launch`, before anything runs.
    """
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"no training script at {str(script)!r}: give the path to timm's train.py (or your "
                                f"copy of it) first, then its arguments")
    check_timm()
    return path, rewrite_args(argv)


def _announce(path: Path, args: TimmTrainArgs) -> None:
    if os.environ.get("RANK", "0") != "0":  # one line per job, not per process under torchrun
        return
    lines = []
    if args.batched is not None:
        lines.append(f"--aug {args.batched} -> {' '.join(args.added) or '(flags as given)'}; {args.num_mixes} "
                     f"mixed view(s) per image made batched on the device by timm_dynmix")
    elif args.added:
        shown = args.added[args.added.index("--aa") + 1] if "--aa" in args.added else args.config
        lines.append(f"--aug {shown} -> {' '.join(args.added)}")
    elif args.config is not None:
        lines.append(f"DynMix config {args.config}")
    weight = (f"weight {args.jsd_weight:g} from --jsd-weight" if args.jsd_weight is not None
              else "weight: the script's alpha, timm's default 12")
    lines.append(f"timm.loss.JsdCrossEntropy -> timm_dynmix JsdLoss ({weight}); running {path}")
    lines += [f"note: {n}" for n in args.notes]
    for line in lines:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def execute(path: Path, args: TimmTrainArgs) -> None:
    """Run the prepared script as ``__main__`` inside :func:`timm_patched` (see :func:`launch`)."""
    with timm_patched(args.jsd_weight), batched_loader_patched(args.batched, args.num_mixes):
        _announce(path, args)
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = [str(path), *args.argv]
        sys.path.insert(0, str(path.resolve().parent))  # as `python train.py` would: the script's folder first
        try:
            runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.argv = saved_argv
            sys.path[:] = saved_path


def launch(script: str | os.PathLike[str], argv: Sequence[str]) -> TimmTrainArgs:
    """Run a timm train script as ``__main__`` with DynMix (``--aug dynmix...``) and our JSD loss.

    Args:
        script: Path to timm's ``train.py`` or a copy of it.
        argv: Its arguments, with ``--aug dynmix[-<config>]`` and ``--jsd-weight W`` where wanted.

    Returns:
        The rewritten arguments the script ran with. Exceptions (and ``SystemExit``) of the script propagate.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: before the script starts, for a missing script or YAML file,
            a bad or conflicting argument (see :func:`rewrite_args`) or an incompatible timm (see :func:`check_timm`).
    """
    path, args = prepare(script, argv)
    execute(path, args)
    return args


# ----------------------------------------------------------------------------------------------------------------
