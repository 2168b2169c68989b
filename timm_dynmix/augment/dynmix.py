"""``DynamicMixup``: the Dynamic Mixup augmentation of one PIL image.

Algorithm (design notes, "The algorithm, exactly"):

1. Build two chains. A chain is one random op ``t1`` or the composition ``t2∘t1`` (depth 2 with probability
   ``depth2_prob``, only when ``depth == 2``); ops are drawn uniformly, with replacement, from the op set, and
   every op call draws its own level uniformly in [0.1, magnitude].
2. Apply both chains to the image, giving ``X1`` and ``X2`` in float [0, 1].
3. Mix: ``X = m1*X1 + m2*X2 + m1*m2*(X1 - X2)``, clipped to [0, 1]. Weights (``weights`` mode):
   ``pair``: m1 ~ Beta(alpha, alpha), m2 = 1 - m1; ``indep``: m1, m2 ~ Beta(alpha, alpha) independently;
   ``linear``: pair weights without the residual term.
4. Optional skip blend (off by default): ``X' = (1 - b)*clean + b*X`` with b ~ Beta(alpha, alpha).

Draw order (fixed, so a generator state reproduces a view): for each chain, its depth, then per op the op
index, the level and the op's own draws (the sign); then m1, m2 (``indep`` only) and b (``blend`` only).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from timm_dynmix.augment.config import SMALL_IMAGE_MAX, DynMixConfig, given_keys, parse_config
from timm_dynmix.augment.ops import MIN_LEVEL, OP_SETS, OPS, check_image
from timm_dynmix.rng import seed_from_torch

__all__ = ["DynamicMixup", "MixParams", "mix", "OUTPUTS"]

OUTPUTS = ("pil", "tensor")


@dataclass(frozen=True)
class MixParams:
    """The random choices of one DynMix view.

    Attributes:
        chains: Two chains, each a tuple of ``(op name, parameter)`` steps applied in order.
        levels: The level drawn for every step, in the same nesting as ``chains``.
        m1: Weight of chain 1.
        m2: Weight of chain 2.
        blend: The skip-blend weight b of the mixed image, or None when blending is off.
    """

    chains: tuple[tuple[tuple[str, float], ...], ...]
    levels: tuple[tuple[float, ...], ...]
    m1: float
    m2: float
    blend: float | None = None

    def describe(self) -> list[str]:
        """Human-readable text of each chain, e.g. ``['rotate(-4.2) ∘ flip_h', 'equalize']``."""
        out = []
        for chain in self.chains:
            steps = [f"{name}({param:.3g})" if OPS[name].magnitude else name for name, param in chain]
            out.append(" ∘ ".join(reversed(steps)))  # t2 ∘ t1: the last op applied is written first
        return out


def mix(x1: np.ndarray, x2: np.ndarray, m1: float, m2: float, weights: str = "pair") -> np.ndarray:
    """The DynMix combination of two float images in [0, 1], clipped to [0, 1].

    ``X = m1*X1 + m2*X2 + m1*m2*(X1 - X2)``; ``weights == "linear"`` drops the residual term.
    """
    out = m1 * x1 + m2 * x2
    if weights != "linear":
        out = out + (m1 * m2) * (x1 - x2)
    return np.clip(out, 0.0, 1.0, out=out)


class DynamicMixup:
    """Dynamic Mixup of a PIL image: one DynMix view per call.

    Args:
        config: A ``dynmix-...`` config string or a :class:`DynMixConfig` (``"dynmix"`` = the defaults).
        output: ``"pil"`` (uint8 image of the input's mode, rounded) or ``"tensor"`` (float32 CHW in [0, 1]).
        seed: Without an explicit generator, calls draw from torch's global RNG when ``seed`` is None (DataLoader
            seeds it per worker), or from a stream keyed by ``(seed, epoch, rank, worker id, DataLoader worker
            seed, call number)`` when it is set (see :meth:`draw_seed`): workers, ranks and epochs never repeat
            each other, and a run with the same ``seed`` and the same torch seed (which fixes DataLoader's
            per-epoch worker seeds) repeats its views. For per-sample reproducibility that does not depend on
            the loader's order, pass ``rng`` (as :class:`timm_dynmix.DynMixDataset` does).

    A config string without an ``o`` key runs the ``cifar`` op set; the first image larger than 64 px it meets
    raises a ``UserWarning`` (once per transform): give ``o`` (``oimagenet`` adds the paper's ``downscale``), or
    build the transform with :func:`timm_dynmix.create_transform`, which picks the set from the image size.

    Example:
        >>> t = DynamicMixup("dynmix-m3-d2-a1")
        >>> view = t(img)                                        # PIL image, same size and mode
        >>> view = t(img, rng=np.random.default_rng(0))          # reproducible
    """

    def __init__(self, config: str | DynMixConfig = "dynmix", *, output: str = "pil", seed: int | None = None):
        self.config = parse_config(config)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self.output = output
        self.seed = seed
        self.epoch = 0
        self._calls = 0
        # the op set came from the default (no 'o' key): warn when it meets images it was not meant for
        self.given_keys = given_keys(config)  # the keys the config string set explicitly (all for a DynMixConfig)
        self._warn_default_ops = "o" not in self.given_keys and self.config.ops == OP_SETS["cifar"]

    @property
    def config_str(self) -> str:
        return self.config.to_string()

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"{type(self).__name__}({self.config_str!r}, output={self.output!r}{seed})"

    def set_epoch(self, epoch: int) -> None:
        """Key the ``seed`` stream by ``epoch`` and restart its call count (a resumed run repeats the epoch).

        Call it in the main process before the epoch's DataLoader iterator is created (workers copy it then).
        Without it, DataLoader workers still differ per epoch through their per-epoch torch seed.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)
        self._calls = 0

    # -- sample ---------------------------------------------------------------------------------------------------
    def draw_seed(self) -> int:
        """The next 63-bit seed of this transform's stream (used when a call gets no ``rng``).

        ``seed=None``: drawn from torch's global generator. Otherwise derived from ``(seed, epoch, rank, worker id,
        the DataLoader worker's torch seed, call number)``. DataLoader draws a fresh base seed for its workers at
        every epoch (from torch's global generator or the loader's ``generator``), so forked workers, which all
        start from the same call count, neither repeat each other nor the previous epoch. The rank comes from
        ``torch.distributed`` when initialized, else from the ``RANK`` environment variable.
        """
        if self.seed is None:
            return seed_from_torch()
        info = torch.utils.data.get_worker_info()
        worker, loader_seed = (0, 0) if info is None else (info.id + 1, int(info.seed) & _MASK64)
        self._calls += 1
        keys = (self.epoch, _rank(), worker, loader_seed, self._calls, _STREAM_KEY)
        state = np.random.SeedSequence(entropy=self.seed, spawn_key=keys).generate_state(2, dtype=np.uint32)
        return (int(state[0]) << 31) ^ int(state[1])

    def _default_rng(self) -> np.random.Generator:
        return np.random.default_rng(self.draw_seed())

    def sample_params(self, rng: np.random.Generator, size: tuple[int, int]) -> MixParams:
        """Draw the random choices of one view for an image of ``size = (width, height)``."""
        cfg = self.config
        chains, levels = [], []
        for _ in range(2):
            depth = 2 if (cfg.depth == 2 and rng.random() < float(cfg.depth2_prob or 0.0)) else 1
            steps, lv = [], []
            for _ in range(depth):
                op = OPS[cfg.ops[int(rng.integers(len(cfg.ops)))]]
                level = float(rng.uniform(MIN_LEVEL, cfg.magnitude)) if cfg.magnitude > MIN_LEVEL else MIN_LEVEL
                steps.append((op.name, op.sample(level, rng, size)))
                lv.append(level)
            chains.append(tuple(steps))
            levels.append(tuple(lv))
        m1 = float(rng.beta(cfg.alpha, cfg.alpha))
        m2 = float(rng.beta(cfg.alpha, cfg.alpha)) if cfg.weights == "indep" else 1.0 - m1
        blend = float(rng.beta(cfg.alpha, cfg.alpha)) if cfg.blend else None
        return MixParams(tuple(chains), tuple(levels), m1, m2, blend)

    # -- apply ----------------------------------------------------------------------------------------------------
    @staticmethod
    def apply_chain(img: Image.Image, chain: tuple[tuple[str, float], ...]) -> Image.Image:
        """Apply one chain of ``(op name, parameter)`` steps."""
        for name, param in chain:
            img = OPS[name].apply(img, param)
        return img

    def apply_float(self, img: Image.Image, params: MixParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``params``: returns ``(X1, X2, X)`` as float32 HWC arrays in [0, 1] (HW1 for mode L)."""
        x1, x2 = (_to_float(self.apply_chain(img, chain)) for chain in params.chains)
        out = mix(x1, x2, params.m1, params.m2, self.config.weights)
        if params.blend is not None:
            out = (1.0 - params.blend) * _to_float(img) + params.blend * out
        return x1, x2, out

    def apply(self, img: Image.Image, params: MixParams) -> Image.Image | torch.Tensor:
        """Apply ``params`` to ``img`` and return the view in this transform's output format."""
        return self._finish(self.apply_float(img, params)[2], img.mode)

    def _finish(self, out: np.ndarray, mode: str) -> Image.Image | torch.Tensor:
        if self.output == "tensor":
            return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
        arr = np.rint(out * 255.0).astype(np.uint8)
        return Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image | torch.Tensor:
        """One DynMix view of ``img`` (PIL, mode L/RGB/RGBA, at least 8x8 pixels)."""
        check_image(img)
        if self._warn_default_ops and max(img.size) > SMALL_IMAGE_MAX:
            self._warn_default_ops = False
            warnings.warn(f"DynMix config {self.config_str!r} runs the default 'cifar' op set on a "
                          f"{img.size[0]}x{img.size[1]} image; for images above {SMALL_IMAGE_MAX} px the paper adds "
                          f"'downscale' (op set 'imagenet'): give the op set explicitly ('-oimagenet' or '-ocifar') "
                          f"or use timm_dynmix.create_transform, which picks it from the image size",
                          UserWarning, stacklevel=2)
        if rng is None:
            rng = self._default_rng()
        elif not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
        return self.apply(img, self.sample_params(rng, img.size))


_MASK64 = (1 << 64) - 1
_STREAM_KEY = 0x646D6978  # "dmix": keeps this stream apart from other uses of the same seed


def _rank() -> int:
    """This process's distributed rank: torch.distributed's when initialized, else ``$RANK``, else 0."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    env = os.environ.get("RANK", "")
    return int(env) if env.isdigit() else 0


def _to_float(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    return arr[:, :, None] if arr.ndim == 2 else arr
