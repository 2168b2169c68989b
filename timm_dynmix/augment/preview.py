"""A picture of what a DynMix config does: input, both chain outputs and the mixed view, with captions."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from timm_dynmix.augment.config import DynMixConfig
from timm_dynmix.augment.dynmix import DynamicMixup
from timm_dynmix.augment.ops import check_image
from timm_dynmix.augment.spec import AugSpec, create_aug_spec
from timm_dynmix.rng import sample_rng

__all__ = ["make_preview", "make_aug_preview", "load_sample_image", "SAMPLE_IMAGES"]

SAMPLE_IMAGES = ("china.jpg", "flower.jpg")  # photographs shipped inside scikit-learn
_CAPTION_H = 30
_PAD = 4


def load_sample_image(name: str = "china.jpg") -> Image.Image:
    """A real photograph shipped with scikit-learn (``china.jpg`` or ``flower.jpg``), as a PIL RGB image."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; known: {', '.join(SAMPLE_IMAGES)}")
    from sklearn.datasets import load_sample_image as _load

    return Image.fromarray(_load(name)).convert("RGB")


def _tile(img: Image.Image, size: int) -> Image.Image:
    img = img.convert("RGB") if img.mode != "RGB" else img
    scale = size / max(img.size)
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample)


def make_preview(img: Image.Image, config: str | DynMixConfig = "dynmix", rows: int = 4, seed: int = 0,
                 tile: int = 192) -> Image.Image:
    """A grid with one row per sampled view: input | chain 1 | chain 2 | mixed view, each captioned.

    Args:
        img: The input image (PIL, mode L/RGB/RGBA).
        config: The DynMix config to show.
        rows: Number of sampled views (rows).
        seed: Seed of the draws (row r uses ``sample_rng(seed, index=r)``).
        tile: Size in pixels of the longer side of every tile (small images are enlarged without smoothing).
    """
    check_image(img)
    if not 1 <= rows <= 64:
        raise ValueError(f"rows must be in [1, 64], got {rows}")
    if not 32 <= tile <= 1024:
        raise ValueError(f"tile must be in [32, 1024] pixels, got {tile}")
    t = DynamicMixup(config)
    font = ImageFont.load_default()
    cell_w = tile + 2 * _PAD
    tiles_h = _tile(img, tile).height
    cell_h = tiles_h + _CAPTION_H + 2 * _PAD
    grid = Image.new("RGB", (4 * cell_w, _CAPTION_H + rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((_PAD, _PAD), f"{t.config_str}  (seed {seed})", fill="black", font=font)
    for r in range(rows):
        params = t.sample_params(sample_rng(seed, index=r, split="preview"), img.size)
        x1, x2, x = t.apply_float(img, params)
        images = [img] + [_from_float(a) for a in (x1, x2, x)]
        chains = [" -> ".join(reversed(c.split(" ∘ "))) for c in params.describe()]
        weights = f"m1={params.m1:.2f} m2={params.m2:.2f}"
        if params.blend is not None:
            weights += f" b={params.blend:.2f}"
        captions = ["input", f"X1: {chains[0]}", f"X2: {chains[1]}", f"{t.config.weights}: {weights}"]
        top = _CAPTION_H + r * cell_h
        for c, (im, cap) in enumerate(zip(images, captions)):
            left = c * cell_w + _PAD
            grid.paste(_tile(im, tile), (left, top + _PAD))
            _caption(draw, (left, top + _PAD + tiles_h + 2), cap, tile, font)
    return grid


@contextmanager
def _global_seed(seed: int) -> Iterator[None]:
    """Seed ``random``, ``numpy.random`` and torch (timm's augmentations draw from them); restore them after."""
    import torch

    state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])


def _other_image(img: Image.Image) -> Image.Image:
    """The second image a mixup/cutmix preview mixes the input with: a sample photograph at the input's size."""
    other = load_sample_image("flower.jpg").convert(img.mode if img.mode in ("L", "RGB") else "RGB")
    return other.resize(img.size, Image.Resampling.BILINEAR)


def _aug_rows(img: Image.Image, spec: AugSpec, rows: int, seed: int) -> list[list[tuple[Image.Image, str]]]:
    """Per row, the (image, caption) tiles of a non-DynMix augmentation."""
    import torch

    aug = spec.source or spec.canonical
    if spec.family == "none":
        return [[(img, "input: --aug none changes nothing (the trainer's crop and flip are not shown)")]]
    rgb = img.convert("RGB")
    if spec.family in ("mixup", "cutmix"):  # timm's Mixup as the trainer runs it (alpha 1), on a batch of two images
        from timm.data import Mixup

        other = _other_image(rgb)
        mixup = Mixup(mixup_alpha=1.0 if spec.family == "mixup" else 0.0,
                      cutmix_alpha=1.0 if spec.family == "cutmix" else 0.0,
                      label_smoothing=0.0, num_classes=2)
        out = []
        for r in range(rows):
            x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
                             for im in (rgb, other)])
            with _global_seed(seed * 1000 + r):
                x, target = mixup(x, torch.tensor([0, 1]))
            mixed = _from_float(x[0].permute(1, 2, 0).clamp(0, 1).numpy())
            out.append([(rgb, "input"), (other, "mixed with (another image of the batch)"),
                        (mixed, f"{aug}: lambda={float(target[0, 0]):.2f}")])
        return out
    if spec.family == "prime":  # batched only: three views of the image as a batch of one
        from timm_dynmix.augment.prime import PrimeBatch

        prime = PrimeBatch(spec.params, num_mixes=3)
        x = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
        out = []
        for r in range(rows):
            views = prime(x, seed=seed, epoch=0, indices=[r])
            out.append([(rgb, "input"), *[(Image.fromarray(v[0].permute(1, 2, 0).numpy()), f"{aug}: view {k + 1}")
                                          for k, v in enumerate(views)]])
        return out
    from timm_dynmix.augment.per_image import per_image_augmentation

    t = per_image_augmentation(spec, (rgb.height, rgb.width), (0.5, 0.5, 0.5), "bilinear", output="pil")
    ours = spec.timm_string is None  # the papers' baselines take the per-sample rng; timm's draw from the globals
    out = []
    for r in range(rows):
        row = [(rgb, "input")]
        for v in range(3):
            if ours:
                view = t(rgb, rng=sample_rng(seed, index=r, view=v, split="preview"))
            else:
                with _global_seed(seed * 1000 + 3 * r + v):
                    view = t(rgb)
            row.append((view, f"{aug}: view {v + 1}"))
        out.append(row)
    return out


def make_aug_preview(img: Image.Image, aug: str | AugSpec = "dynmix", rows: int = 4, seed: int = 0,
                     tile: int = 192) -> Image.Image:
    """A grid of what ``aug`` (any ``--aug`` of the trainer) does to ``img``, one row per draw.

    DynMix strings give :func:`make_preview`; AugMix, AA*, Random AA* and timm's strings show three independent
    views per row; ``mixup``/``cutmix`` the input, the image it is mixed with and the mix (timm's ``Mixup``, alpha 1);
    ``none`` the input only. The training crop and flip are not applied.

    Raises:
        ValueError: for a bad ``rows``/``tile``, or an augmentation string the factories refuse.
    """
    if isinstance(aug, DynMixConfig):
        return make_preview(img, aug, rows=rows, seed=seed, tile=tile)
    spec = create_aug_spec(aug)  # a string is parsed here, once; an AugSpec is used as it is
    if spec.family == "dynmix":
        return make_preview(img, spec.params, rows=rows, seed=seed, tile=tile)
    check_image(img)
    if not 1 <= rows <= 64:
        raise ValueError(f"rows must be in [1, 64], got {rows}")
    if not 32 <= tile <= 1024:
        raise ValueError(f"tile must be in [32, 1024] pixels, got {tile}")
    grid_rows = _aug_rows(img, spec, rows, seed)
    font = ImageFont.load_default()
    cols = max(len(r) for r in grid_rows)
    cell_w = tile + 2 * _PAD
    tiles_h = _tile(img, tile).height
    cell_h = tiles_h + _CAPTION_H + 2 * _PAD
    grid = Image.new("RGB", (cols * cell_w, _CAPTION_H + len(grid_rows) * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((_PAD, _PAD), f"{spec.source or spec.canonical}  (seed {seed})", fill="black", font=font)
    for r, row in enumerate(grid_rows):
        top = _CAPTION_H + r * cell_h
        for c, (im, cap) in enumerate(row):
            left = c * cell_w + _PAD
            grid.paste(_tile(im, tile), (left, top + _PAD))
            _caption(draw, (left, top + _PAD + tiles_h + 2), cap, tile, font)
    return grid


def _supported_mode(im: Image.Image) -> Image.Image:
    """Convert a loaded file to L, RGB or RGBA, keeping transparency and grayscale."""
    if im.mode in ("L", "RGB", "RGBA"):
        return im.copy()
    if im.mode in ("LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return im.convert("RGBA")
    if im.mode in ("1", "I", "I;16", "F"):
        return im.convert("L")
    return im.convert("RGB")


def _from_float(a: np.ndarray) -> Image.Image:
    arr = np.rint(a * 255.0).astype(np.uint8)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], mode="L")
    return Image.fromarray(arr, mode="RGBA" if arr.shape[2] == 4 else "RGB")


def _caption(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, width: int,
             font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    """Draw ``text`` wrapped onto at most two lines of ``width`` pixels."""
    words, lines, line = text.split(" "), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = w
    lines.append(line)
    draw.multiline_text(xy, "\n".join(lines[:2]), fill="black", font=font, spacing=2)


def save_preview(image_path: str | None, out: str | Path, config: str | AugSpec, rows: int = 4, seed: int = 0,
                 tile: int = 192) -> Path:
    """Load ``image_path`` (or the scikit-learn sample photo when None), render the preview of ``config`` (any
    ``--aug``, see :func:`make_aug_preview`) and save it."""
    if image_path is None or image_path in SAMPLE_IMAGES:
        img = load_sample_image(image_path or "china.jpg")
    else:
        path = Path(image_path)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {image_path}")
        with Image.open(path) as im:
            img = _supported_mode(im)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    make_aug_preview(img, config, rows=rows, seed=seed, tile=tile).save(out)
    return out
