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

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from timm_dynmix.config import DynMixConfig, parse_config
from timm_dynmix.ops import MIN_LEVEL, OPS, check_image
from timm_dynmix.rng import derive_seed, seed_from_torch

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
            seeds it per worker), or from a stream keyed by ``(seed, call number, worker id)`` when it is set.
            For per-sample reproducibility in training pass ``rng`` (as :class:`timm_dynmix.DynMixDataset` does).

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
        self._calls = 0

    @property
    def config_str(self) -> str:
        return self.config.to_string()

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"{type(self).__name__}({self.config_str!r}, output={self.output!r}{seed})"

    # -- sample ---------------------------------------------------------------------------------------------------
    def _default_rng(self) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(seed_from_torch())
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id + 1
        self._calls += 1
        return np.random.default_rng(derive_seed(self.seed, 0, self._calls, worker, split="dynmix-call"))

    def sample_params(self, rng: np.random.Generator, size: tuple[int, int]) -> MixParams:
        """Draw the random choices of one view for an image of ``size = (width, height)``."""
        cfg = self.config
        chains, levels = [], []
        for _ in range(2):
            depth = 2 if (cfg.depth == 2 and rng.random() < cfg.depth2_prob) else 1
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
        if rng is None:
            rng = self._default_rng()
        elif not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
        return self.apply(img, self.sample_params(rng, img.size))


def _to_float(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    return arr[:, :, None] if arr.ndim == 2 else arr
