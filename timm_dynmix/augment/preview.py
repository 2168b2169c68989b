"""A picture of what a DynMix config does: input, both chain outputs and the mixed view, with captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from timm_dynmix.augment.config import DynMixConfig
from timm_dynmix.augment.dynmix import DynamicMixup
from timm_dynmix.augment.ops import check_image
from timm_dynmix.rng import sample_rng

__all__ = ["make_preview", "load_sample_image", "SAMPLE_IMAGES"]

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


def _caption(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, width: int, font: ImageFont.ImageFont) -> None:
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


def save_preview(image_path: str | None, out: str | Path, config: str, rows: int = 4, seed: int = 0,
                 tile: int = 192) -> Path:
    """Load ``image_path`` (or the scikit-learn sample photo when None), render the preview and save it."""
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
    make_preview(img, config, rows=rows, seed=seed, tile=tile).save(out)
    return out
