"""Shared fixtures: real images from ../shared/data/cifar10 when present, else crops of scikit-learn's photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TIMM_DYNMIX_SHARED", ROOT.parent / "shared"))
CIFAR10_DIR = SHARED / "data" / "cifar10"
CIFAR10_TEST = CIFAR10_DIR / "cifar10_test_uint8.npz"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def package_modules(include_main: bool = True) -> dict[str, Path]:
    """Every module of the ``timm_dynmix`` package by dotted name (a package by its ``__init__.py``), with its file;
    ``__main__`` modules only if ``include_main``."""
    package = Path(__file__).resolve().parents[1] / "timm_dynmix"
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__main__" and not include_main:
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def cifar10_test_arrays(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` CIFAR-10 test images (uint8 NHWC) and labels from ../shared; skips when absent."""
    if not CIFAR10_TEST.is_file():
        pytest.skip(f"CIFAR-10 copy not found at ../shared/data/cifar10 ({CIFAR10_TEST.name} missing)")
    with np.load(CIFAR10_TEST, allow_pickle=False) as z:
        x, y = z["x_test"], z["y_test"]
    return (x, y) if n is None else (x[:n], y[:n])


def _photo_crops(n: int, size: int) -> list[Image.Image]:
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        photo = photos[i % 2]
        y = int(rng.integers(0, photo.shape[0] - 4 * size))
        x = int(rng.integers(0, photo.shape[1] - 4 * size))
        crop = Image.fromarray(photo[y:y + 4 * size, x:x + 4 * size]).resize((size, size), Image.Resampling.BOX)
        out.append(crop)
    return out


@pytest.fixture(scope="session")
def real_images() -> list[Image.Image]:
    """24 natural 32x32 RGB images: CIFAR-10 test images when ../shared is present, else photo crops."""
    if CIFAR10_TEST.is_file():
        x, _ = cifar10_test_arrays(24)
        return [Image.fromarray(a) for a in x]
    return _photo_crops(24, 32)


@pytest.fixture(scope="session", params=["cifar10", "photo_crops"])
def natural_images(request) -> list[Image.Image]:
    """24 natural 32x32 RGB images from each source in turn: CIFAR-10 test images (skipped without ../shared) and the
    photo crops a clone without ../shared falls back to, so that a test's thresholds are proven on both."""
    if request.param == "cifar10":
        x, _ = cifar10_test_arrays(24)
        return [Image.fromarray(a) for a in x]
    return _photo_crops(24, 32)


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real 427x640 photograph (scikit-learn's china.jpg)."""
    from timm_dynmix.augment.preview import load_sample_image

    return load_sample_image("china.jpg")


# the modules of the `eval` extra (pip install 'timm-dynmix[eval]') that corruptions, -P videos and report plots use;
# imagecorruptions is only read from its installed files (frost textures), never imported
EVAL_EXTRA = ("cv2", "skimage", "matplotlib")
EVAL_EXTRA_FILES = ("imagecorruptions",)


@pytest.fixture
def eval_extra() -> None:
    """Skip the test (with the reason) when a module of the ``eval`` extra is not installed."""
    import importlib.util

    for name in EVAL_EXTRA:
        pytest.importorskip(name, reason=f"needs the eval extra ({name} missing): pip install 'timm-dynmix[eval]'")
    for name in EVAL_EXTRA_FILES:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs the eval extra ({name} missing): pip install 'timm-dynmix[eval]'")


def make_image_folder(root, n_per_class=6, classes=("cat", "dog", "eel"), corrupt=0, size=32):
    """An image folder with train/ and test/ splits of small real-looking images (PNG), ``corrupt`` broken files."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c_idx, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None] * (c_idx + 1) / len(classes)
                arr = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i:03d}.png")
    for i in range(corrupt):
        (root / "train" / classes[0] / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return root
