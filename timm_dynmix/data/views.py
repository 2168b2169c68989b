"""The split data path: clean + DynMix views of one base crop, and a split-major collate.

Training with the JSD consistency loss needs, for every image, the clean view and ``num_mixes`` augmented
views of the *same* random crop/flip, as timm's ``AugMixDataset`` builds them. Here:

* :class:`DynMixViews` maps one PIL image to ``(clean, mix_1, ..., mix_N)`` tensors;
* :class:`DynMixDataset` wraps a map-style dataset and derives every random draw from
  ``(seed, epoch, index, view)``, so that workers, ranks and resumed runs are reproducible;
* :func:`collate_splits` stacks a batch split-major (all clean, then all mix_1, ...), the layout that
  ``torch.split(x, batch_size)``, :class:`timm_dynmix.JsdLoss` and timm's ``JsdCrossEntropy`` expect.

The pipelines that feed them come from :func:`timm_dynmix.data.transforms_factory.create_transform`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from timm_dynmix.augment.config import DynMixConfig
from timm_dynmix.augment.dynmix import DynamicMixup
from timm_dynmix.rng import derive_seed, seed_from_torch, seeded

__all__ = ["DynMixViews", "DynMixDataset", "collate_splits"]

#: timm's 3-stage ``(primary, secondary, final)`` transform (``create_transform(..., separate=True)``).
StagedTransform = tuple[Callable[..., Any], ...] | list[Callable[..., Any]]


class DynMixViews:
    """Map one image to its clean view and ``num_mixes`` DynMix views of the same base crop.

    The clean view is ``final(crop)``. The DynMix views are computed in float [0, 1] and then normalized like the
    clean view: by ``normalize`` when given, else by the ``Normalize`` found inside ``final``. On its first image
    the object checks that ``final`` is exactly ToTensor followed by that normalization, and raises ``ValueError``
    otherwise (mixed views scaled unlike the clean view would silently corrupt the consistency loss).

    Args:
        base: The shared random crop/flip (PIL -> PIL); runs once per image.
        dynmix: The DynMix transform or its config (string or DynMixConfig); its ``n`` is the number of views unless
            ``num_mixes`` is given. A :class:`DynamicMixup` is used as it is: its ``seed`` keys :meth:`__call__`'s
            draws (see :meth:`DynamicMixup.draw_seed`) and its ``output`` decides the views' precision (``"pil"``:
            rounded to uint8 and passed through ``final`` like the clean view; ``"tensor"``: float, then
            normalized). A string or config gets a float (``"tensor"``) transform, or ``"pil"`` with ``uint8``.
        final: Turns the clean PIL image into a tensor (e.g. ToTensor + Normalize, or uint8 PILToTensor).
        normalize: The normalization of the float DynMix views; None: the one inside ``final`` (if any).
        num_mixes: Number of mixed views (defaults to the config's ``n``).
        uint8: Return uint8 tensors for every view (for augmentation on the device, or timm's prefetcher).

    Raises:
        ValueError: for ``uint8=True`` with a ``DynamicMixup`` whose output is ``"tensor"``, several ``Normalize``
            steps inside ``final``, or ``num_mixes < 1``.
    """

    def __init__(self, base: Callable[..., Any], dynmix: DynamicMixup | DynMixConfig | str, final: Callable[..., Any],
                 normalize: Callable[..., Any] | None = None, num_mixes: int | None = None, uint8: bool = False):
        if isinstance(dynmix, DynamicMixup):
            if uint8 and dynmix.output != "pil":
                raise ValueError(f"uint8=True needs a DynamicMixup with output='pil' (uint8 views), "
                                 f"got output={dynmix.output!r}")
            self.dynmix = dynmix
        else:
            self.dynmix = DynamicMixup(dynmix, output="pil" if uint8 else "tensor")
        cfg = self.dynmix.config
        self.base = base
        self.final = final
        self.uint8 = uint8
        if normalize is None and not uint8 and self.dynmix.output == "tensor":
            normalize = _find_normalize(final)
        self.normalize = normalize
        self.num_mixes = cfg.num_mixes if num_mixes is None else int(num_mixes)
        if self.num_mixes < 1:
            raise ValueError(f"num_mixes must be >= 1, got {num_mixes}")
        self._checked = uint8 or self.dynmix.output == "pil"  # then every view goes through ``final``

    @property
    def num_splits(self) -> int:
        return self.num_mixes + 1

    def set_epoch(self, epoch: int) -> None:
        """Key the seeded stream of a ``DynamicMixup(seed=...)`` by epoch (see :meth:`DynamicMixup.set_epoch`)."""
        self.dynmix.set_epoch(epoch)

    def views(self, img: Image.Image, seeds: Sequence[int]) -> tuple[torch.Tensor, ...]:
        """The ``1 + num_mixes`` views of ``img``; ``seeds[0]`` drives the base crop, ``seeds[k]`` view k."""
        if len(seeds) != self.num_splits:
            raise ValueError(f"views needs {self.num_splits} seeds (1 + num_mixes), got {len(seeds)}")
        with seeded(seeds[0]):
            img = self.base(img)
        out = [self.final(img)]
        if not self._checked:
            self._check_final(img, out[0])
        for k in range(1, self.num_splits):
            view = self.dynmix(img, rng=np.random.default_rng(seeds[k]))
            if isinstance(view, Image.Image):
                out.append(self.final(view))
            else:
                out.append(self.normalize(view) if self.normalize is not None else view)
        return tuple(out)

    def _check_final(self, img: Image.Image, clean: Any) -> None:
        """Refuse a ``final`` whose clean view is not ToTensor (+ ``normalize``): the mixed views would differ."""
        if isinstance(img, Image.Image):
            ref = TF.to_tensor(img)
            if self.normalize is not None:
                ref = self.normalize(ref)
            if not (isinstance(clean, torch.Tensor) and clean.shape == ref.shape and clean.dtype == ref.dtype
                    and torch.allclose(clean, ref, atol=1e-5, rtol=1e-5)):
                norm = "no normalization" if self.normalize is None else f"normalize={self.normalize}"
                raise ValueError(f"final={self.final} does not give ToTensor followed by {norm} of the image, so the "
                                 f"DynMix views would be scaled unlike the clean view; pass the normalization that "
                                 f"final applies as normalize=, or a DynamicMixup(output='pil') to send the views "
                                 f"through final as well")
        self._checked = True

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, ...]:
        """The views of ``img``, seeded from the DynMix transform's ``seed`` stream when it has a seed, else from
        torch's global RNG (per DataLoader worker)."""
        if self.dynmix.seed is None:
            return self.views(img, [seed_from_torch() for _ in range(self.num_splits)])
        rng = np.random.default_rng(self.dynmix.draw_seed())
        return self.views(img, [int(s) for s in rng.integers(0, 2**63 - 1, size=self.num_splits)])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base={self.base}, dynmix={self.dynmix!r}, final={self.final}, "
                f"num_mixes={self.num_mixes})")


def _find_normalize(final: Callable[..., Any]) -> Callable[..., Any] | None:
    """The single ``Normalize`` step inside ``final`` (a Normalize or nested Compose), or None."""
    from torchvision.transforms import v2

    found = []

    def walk(t: Any) -> None:
        if isinstance(t, (transforms.Normalize, v2.Normalize)):
            found.append(t)
        for sub in getattr(t, "transforms", None) or ():
            walk(sub)

    walk(final)
    if len(found) > 1:
        raise ValueError(f"final={final} normalizes {len(found)} times; pass the DynMix views' normalization as "
                         f"normalize=")
    return found[0] if found else None


class DynMixDataset(torch.utils.data.Dataset[tuple[Any, Any]]):
    """A map-style dataset wrapper returning ``((clean, mix_1, ..., mix_N), label)`` with reproducible draws.

    Every random draw for sample ``index`` comes from ``derive_seed(seed, epoch, index, view, split)``: the base
    crop/flip from view 0, the DynMix view k from view k. The same index, epoch and seed give the same views in
    any worker or process; call :meth:`set_epoch` at the start of every epoch.

    Args:
        dataset: A map-style dataset whose items are ``(image, label)`` tuples or dicts (see ``image_key``).
        transform: A :class:`DynMixViews`; or timm's 3-stage ``(primary, secondary, final)`` tuple (as from
            ``create_transform(..., separate=True)``, e.g. for the AugMix baseline) with ``num_splits``; or any
            single transform (then items are ``(view, label)``, still seeded per sample).
        num_splits: Views per image for a 3-stage tuple (clean + ``num_splits - 1`` augmented); ignored otherwise.
        seed: The run's seed.
        split: A name mixed into the seeds, so that e.g. train and eval draws differ.
        image_key: Key of the image in dict items.
        label_key: Key of the label in dict items.
    """

    def __init__(self, dataset: Any, transform: DynMixViews | StagedTransform | Callable[..., Any], num_splits: int = 3,
                 seed: int = 0, split: str = "train", image_key: str = "image", label_key: str = "label"):
        self.dataset = dataset
        self.transform = transform
        if isinstance(transform, DynMixViews):
            self.num_splits = transform.num_splits
        elif isinstance(transform, (tuple, list)):
            if len(transform) != 3:
                raise ValueError(f"a staged transform must be a (primary, secondary, final) tuple, "
                                 f"got {len(transform)} stages")
            if num_splits < 2:
                raise ValueError(f"num_splits must be >= 2 for a staged transform, got {num_splits}")
            self.num_splits = int(num_splits)
        elif callable(transform):
            self.num_splits = 1
        else:
            raise TypeError(f"transform must be DynMixViews, a 3-stage tuple or a callable, "
                            f"got {type(transform).__name__}")
        derive_seed(seed)  # validates
        self.seed = seed
        self.split = split
        self.epoch = 0
        self.image_key = image_key
        self.label_key = label_key

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _item(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        if isinstance(item, dict):
            return item[self.image_key], item[self.label_key]
        return item[0], item[1]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, label = self._item(index)
        return self.transform_sample(img, index), label

    def transform_sample(self, img: Any, index: int) -> Any:
        """The view(s) of sample ``index`` (image ``img``) in the current epoch; also used for streamed samples."""
        seeds = [derive_seed(self.seed, self.epoch, index, v, self.split) for v in range(self.num_splits)]
        t = self.transform
        if isinstance(t, DynMixViews):
            return t.views(img, seeds)
        if isinstance(t, (tuple, list)):
            primary, secondary, final = t
            with seeded(seeds[0]):
                img = primary(img)
            views = [final(img)]
            for s in seeds[1:]:
                with seeded(s):
                    views.append(final(secondary(img)))
            return tuple(views)
        with seeded(seeds[0]):
            return t(img)


def collate_splits(batch: Sequence[tuple[Sequence[torch.Tensor], Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``((view_0, ..., view_N), label)`` items split-major.

    Returns ``(x, y)`` with ``x`` of shape ``((N+1)*B, C, H, W)`` ordered all view 0, then all view 1, ... and the
    labels repeated per split (``y[:B]`` are the batch's labels), exactly as timm's ``fast_collate`` lays out
    AugMix splits; ``torch.split(x, B)`` gives the views back.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    num = len(batch[0][0])
    if any(len(views) != num for views, _ in batch):
        raise ValueError("every item of a batch must have the same number of views")
    x = torch.cat([torch.stack([views[k] for views, _ in batch]) for k in range(num)])
    y = torch.utils.data.default_collate([label for _, label in batch])
    y = y.repeat((num,) + (1,) * (y.ndim - 1))
    return x, y
