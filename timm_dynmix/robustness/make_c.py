"""``timm-dynmix make-c``: generate a -C benchmark (the 15 + 4 corruptions x 5 severities) or a -C-bar benchmark
(``suite="c-bar"``: the 10 corruptions of Mintun et al., 2021, :mod:`timm_dynmix.robustness.corruptions_cbar`) from
any image dataset.

The source is anything :func:`timm_dynmix.data.datasets.load_image_data` reads (a Hub id or name with ``--data-dir``,
a ``save_to_disk`` folder, parquet/arrow files, an image folder with class sub-folders, an npz archive); its
evaluation split by default (``--split``). Output, in the official layouts:

* ``--layout npy`` (default with ``--params cifar``): ``<corruption>.npy`` uint8 (5 N, H, W, 3), severity-major,
  and ``labels.npy`` (5 N,), exactly as CIFAR-10-C; plus ``clean.npy`` (N, H, W, 3), the uncorrupted images in the
  same order, so that ``timm-dynmix eval`` measures the clean error on the same images.
* ``--layout folder`` (default with ``--params imagenet``): ``<corruption>/<severity>/<class>/<name>.JPEG``,
  saved as JPEG quality 85 like ImageNet-C, plus ``clean/<class>/<name>.JPEG`` through the same encoding.

With ``--params imagenet`` images are first resized (shorter side ``round(crop / 0.875)``, bilinear) and centre
cropped to ``--crop`` (224: ImageNet-C's Resize(256) + CenterCrop(224)); with ``--params cifar`` they are used as
they are (``--crop`` to change that) and must all have one size for the npy layout.

``--max-per-cell N`` keeps a seeded random subset of N source images
(:func:`timm_dynmix.data.sampler.subset_indices`,
sorted, the same for every cell; ``make_c.json`` records the source indices). Each image's corruption depends only
on ``(seed, corruption, severity, source index)`` (:func:`timm_dynmix.robustness.corruptions.corruption_rng`).

``suite="c-bar"`` writes the same layouts with the C-bar corruptions (CIFAR-10-C-bar with ``--params cifar``); the
manifest then records ``"suite": "c-bar"``, the paper and the severity levels (``"levels"``). The C-bar corruptions
need square images. With ``--params imagenet`` only the five ImageNet-C-bar corruptions implemented here exist, so
they must be asked for with ``corruptions`` (a complete ImageNet-C-bar cannot be built).

The original CIFAR-10-C-bar script (``make_cifar10_c_bar.py`` of ``facebookresearch/augmentation-corruption``) cannot
reproduce its own output: its ``--seed`` is parsed but never used (every draw comes from numpy's unseeded global
generator inside DataLoader workers, so the output also depends on ``--num_workers``; before PyTorch 1.9 the workers
even started from the same numpy state and repeated each other's draws); ``np.int`` (its labels array, and
``Lines``) fails on numpy >= 1.24; a last batch smaller than ``--batch_size`` (any batch size not dividing 10,000) is
written from row ``j`` instead of ``j * batch_size`` (a shape error); and ``--corruption_file`` is parsed but the
script always reads ``cifar10_c_bar.csv``. Here every image's draws come from its own generator keyed by
``(seed, corruption, severity, index)``, so a rerun, any batch size and any number of workers give the same bytes;
chunks are written at their own rows; ``--corruptions`` picks the corruptions.

Resumable: each corruption is written to a temporary file/folder and renamed into place when complete, and
``make_c.json`` (the manifest) is rewritten after every corruption; a rerun with the same settings skips the
corruptions already complete. A rerun with different settings into the same folder is refused.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from timm_dynmix.data.sampler import balanced_subset_indices, subset_indices
from timm_dynmix.fileio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    fsync_tree,
    read_json,
    replace_dir,
)
from timm_dynmix.robustness.corruptions import ALL_CORRUPTIONS, PARAMS, corrupt
from timm_dynmix.robustness.corruptions_cbar import (
    CBAR_CORRUPTIONS,
    CBAR_PAPER,
    IMAGENET_CBAR_ONLY,
    PARAMS_CBAR,
    cbar_corruptions,
    corrupt_cbar,
)
from timm_dynmix.robustness.readers import MANIFEST_NAME
from timm_dynmix.version import __version__

__all__ = ["make_c", "load_split", "SEVERITIES", "SUITES"]

logger = logging.getLogger(__name__)
SEVERITIES = (1, 2, 3, 4, 5)
SUITES = ("c", "c-bar")
_SETTINGS = ("source", "split", "params", "seed", "max_per_cell", "class_balanced", "layout", "crop", "num_images",
             "image_shape", "suite")
_SETTING_DEFAULTS = {"class_balanced": False, "suite": "c"}  # for manifests written before the setting existed


def load_split(dataset: str, data_dir: str | None = None, split: str | None = None, image_column: str | None = None,
               label_column: str | None = None) -> tuple[Any, Any, str]:
    """The split to evaluate or corrupt: ``(hf_dataset, ImageData, split name)``.

    ``split`` if given, else the dataset's evaluation split (test, validation, ...), else its train split. Datasets
    without a train split (e.g. a test-only folder) are accepted. A single npz archive file is one split, named as
    the archive says (:func:`_npz_file_split`: ``test`` for ``cifar10_test_uint8.npz`` or an ``x_test`` array), and
    that name is accepted as ``split``.
    """
    from timm_dynmix.data.datasets import DatasetLoadError, load_image_data

    def load(train: str | None, evaluation: str | None) -> Any:
        return load_image_data(dataset, data_dir=data_dir, image_column=image_column, label_column=label_column,
                               train_split=train, eval_split=evaluation)

    source = Path(data_dir if data_dir is not None else dataset)
    held = _npz_file_split(source) if source.suffix == ".npz" and source.is_file() else None
    if split is not None:
        # the loader files a lone archive under "train", whatever it holds
        data = load("train", "train") if held is not None and split == held else load(split, split)
        return data.eval, data, held or split
    try:
        data = load(None, None)
    except DatasetLoadError as first:
        if "no split named train" not in str(first):
            raise
        for candidate in ("test", "validation", "val", "valid"):
            try:
                data = load(candidate, candidate)
            except DatasetLoadError:
                continue
            return data.eval, data, candidate
        raise
    if data.eval is not None:
        names = data.extra.get("splits", [])
        return data.eval, data, next((s for s in ("test", "validation", "val", "valid") if s in names), "eval")
    if held is not None:
        return data.train, data, held
    logger.info("dataset %s has no evaluation split: using its train split", dataset)
    return data.train, data, "train"


def _npz_file_split(path: Path) -> str | None:
    """The split an npz archive file holds: ``<split>`` of a ``*_<split>_{jpeg,uint8}.npz`` name, else of its single
    ``x_<split>`` image array (``x_test``), else None (unknown)."""
    parts = path.stem.split("_")
    if len(parts) >= 3 and parts[-1] in ("jpeg", "uint8") and parts[-2]:
        return parts[-2]
    try:
        with np.load(path, allow_pickle=False) as z:  # reads the archive's index only
            keys = [k for k in z.files if k.startswith("x_") and len(k) > 2]
    except (OSError, ValueError):
        return None  # not a readable archive: the loader reports it
    return keys[0][2:] if len(keys) == 1 else None


def _prepare(img: Any, crop: int | None) -> np.ndarray:
    """PIL image -> uint8 (H, W, 3), resized (shorter side round(crop / 0.875)) and centre-cropped when asked."""
    if crop:
        import torchvision.transforms.functional as F

        img = F.center_crop(F.resize(img, round(crop / 0.875)), [crop, crop])
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _names(ds: Any, image_column: str, rows: np.ndarray) -> list[str]:
    """File stems for the folder layout: the source file name when the dataset has one, else the row number."""
    out = []
    for r in rows:
        cell = ds[int(r)][image_column]
        path = cell.get("path") if isinstance(cell, dict) else None
        out.append(Path(path).stem if path else f"{int(r):08d}")
    if len(set(out)) != len(out):  # duplicate file names across classes: fall back to unique row numbers
        out = [f"{int(r):08d}" for r in rows]
    return out


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(out / MANIFEST_NAME, manifest)


def _save_jpeg(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="JPEG", quality=85, optimize=True)


def _corrupt_chunk(args: tuple[np.ndarray, str, int, str, int, np.ndarray, str]) -> np.ndarray:
    images, corruption, severity, params, seed, indices, suite = args
    fn = corrupt_cbar if suite == "c-bar" else corrupt
    return fn(images, corruption, severity, params=params, seed=seed, indices=indices)


def _suite_corruptions(suite: str, params: str, corruptions: Sequence[str] | None) -> list[str]:
    """The corruptions to generate (checked against the suite and the parameter table)."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {suite!r}")
    if suite == "c":
        known: Sequence[str] = ALL_CORRUPTIONS
    else:
        known = cbar_corruptions(params)
        if not corruptions and params == "imagenet":
            raise ValueError(f"ImageNet-C-bar cannot be generated completely: {', '.join(IMAGENET_CBAR_ONLY)} are "
                             f"not implemented; give --corruptions from the implemented ones: {', '.join(known)}")
    names = list(corruptions) if corruptions else list(known)
    unknown = [c for c in names if c not in known]
    if unknown:
        extra = (f" ({', '.join(c for c in unknown if c in CBAR_CORRUPTIONS)} have no ImageNet-C-bar severities)"
                 if suite == "c-bar" and any(c in CBAR_CORRUPTIONS for c in unknown) else "")
        what = "C-bar corruption(s)" if suite == "c-bar" else "corruption(s)"
        raise ValueError(f"unknown {what} {', '.join(unknown)}{extra}; known: {', '.join(known)}")
    return names


def make_c(dataset: str, out: str | os.PathLike[str], *, params: str = "cifar", data_dir: str | None = None,
           split: str | None = None, layout: str | None = None, corruptions: Sequence[str] | None = None,
           max_per_cell: int | None = None, seed: int = 0, crop: int | None = None, batch_size: int = 256,
           num_workers: int = 1, image_column: str | None = None, label_column: str | None = None,
           progress: bool = True, class_balanced: bool = False, suite: str = "c") -> dict[str, Any]:
    """Generate a -C (or -C-bar) benchmark; returns the manifest (also written to ``out/make_c.json``).

    See the module docstring for the layouts and the options. ``class_balanced`` makes the ``max_per_cell`` subset
    take the same number of images from every class (:func:`timm_dynmix.data.sampler.balanced_subset_indices`).
    ``suite`` is ``"c"`` (the 15 + 4 corruptions of CIFAR-10-C / ImageNet-C) or ``"c-bar"`` (the 10 of
    CIFAR-10-C-bar; see the module docstring).
    ``manifest["corruptions"][name]["seconds"]`` is the wall time the corruption took (for the 5 severities of all
    images).
    """
    from tqdm.auto import tqdm

    if params not in PARAMS:
        raise ValueError(f"params must be one of {', '.join(PARAMS)}, got {params!r}")
    layout = layout or ("npy" if params == "cifar" else "folder")
    if layout not in ("npy", "folder"):
        raise ValueError(f"layout must be 'npy' or 'folder', got {layout!r}")
    names = _suite_corruptions(suite, params, corruptions)
    if crop is None and params == "imagenet":
        crop = 224
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 8):
        raise ValueError(f"crop must be an integer >= 8 (pixels), got {crop!r}")
    if batch_size < 1 or num_workers < 1:
        raise ValueError(f"batch_size and num_workers must be >= 1, got {batch_size} and {num_workers}")

    from timm_dynmix.data.datasets import DecodedImageDataset

    ds, data, split_name = load_split(dataset, data_dir, split, image_column, label_column)
    label_names, provenance = list(data.label_names), data.provenance
    total = len(ds)
    if total == 0:
        raise ValueError(f"the {split_name} split of {dataset} is empty")
    if class_balanced:
        all_labels = np.asarray(ds[data.label_column])
        rows = balanced_subset_indices(all_labels, max_per_cell, seed)
        counts = np.unique(all_labels[rows], return_counts=True)[1]
        per_class = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
        how = (f"class-balanced ({per_class} per class), seeded: "
               f"balanced_subset_indices(labels, {max_per_cell}, seed={seed})")
    else:
        rows = subset_indices(total, max_per_cell, seed)
        how = f"sorted numpy choice without replacement, seeded with derive_seed({seed}, split='subset')"
    n = len(rows)
    decoded = DecodedImageDataset(ds, data.image_column, data.label_column)
    shape = _prepare(decoded[int(rows[0])][0], crop).shape
    if suite == "c-bar" and shape[0] != shape[1]:
        raise ValueError(f"the C-bar corruptions need square images, got {shape[0]} x {shape[1]}; give --crop SIZE")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"source": str(dataset) if data_dir is None else f"{dataset} ({data_dir})", "split": split_name,
                "params": params, "seed": seed, "max_per_cell": max_per_cell,
                "class_balanced": bool(class_balanced), "layout": layout, "crop": crop,
                "num_images": n, "image_shape": list(shape)}
    if suite != "c":  # a -C manifest stays as it was before suites existed
        settings["suite"] = suite
    old = {}
    if (out / MANIFEST_NAME).is_file():
        old = read_json(out / MANIFEST_NAME, "make-c manifest")
        pairs = {k: (old.get(k, _SETTING_DEFAULTS.get(k)), settings.get(k, _SETTING_DEFAULTS.get(k)))
                 for k in _SETTINGS}
        diff = [k for k, (was, now) in pairs.items() if was != now]
        if diff:
            raise ValueError(f"{out} holds a benchmark made with other settings ({', '.join(diff)}: "
                             f"{', '.join(f'{pairs[k][0]!r} != {pairs[k][1]!r}' for k in diff)}); use another --out")
    manifest: dict[str, Any] = {
        "format": "timm-dynmix make-c", "timm_dynmix": __version__, **settings,
        "provenance": provenance, "label_names": label_names, "severities": list(SEVERITIES),
        "indices": rows.tolist(),
        "subset": ("all images" if max_per_cell is None or max_per_cell >= total else
                   f"{n} of {total} images: {how}"),
        "corruptions": dict(old.get("corruptions", {})),
    }
    if suite == "c-bar":
        manifest["paper"] = CBAR_PAPER
        manifest["levels"] = {c: list(PARAMS_CBAR[params][c]) for c in names}

    # the clean images, decoded once into a memory-mapped array: clean.npy (npy layout) or .cache/ (folder layout)
    cache = out if layout == "npy" else out / ".cache"
    clean_path, labels_path = cache / "clean.npy", cache / "labels.npy"
    if not (_npy_ok(clean_path, (n, *shape)) and _npy_ok(labels_path, (len(SEVERITIES) * n,))):
        cache.mkdir(exist_ok=True)
        labels = _decode_clean(decoded, rows, crop, shape, clean_path, progress)
        _atomic_npy(labels_path, np.tile(labels.astype(np.uint8 if labels.max() < 256 else np.int64),
                                         len(SEVERITIES)))
    clean = np.load(clean_path, mmap_mode="r")
    labels = np.load(labels_path)[:n]
    stems = _names(ds, data.image_column, rows) if layout == "folder" else []
    if layout == "folder" and not (out / "clean").is_dir():
        _write_tree(out / "clean", ((clean[i:i + batch_size], i) for i in range(0, n, batch_size)), labels, stems,
                    label_names)
    _write_manifest(out, manifest)

    todo = [c for c in names if not _complete(out, c, layout, n, shape, manifest)]
    skipped = [c for c in names if c not in todo]
    if skipped:
        logger.info("already complete, skipped: %s", ", ".join(skipped))
    bar = tqdm(total=len(todo) * len(SEVERITIES) * n, desc="make-c", unit="img", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=num_workers) if num_workers > 1 else None
    try:
        for c in todo:
            bar.set_description(c)
            start = time.perf_counter()
            chunks = [(s, i) for s in SEVERITIES for i in range(0, n, batch_size)]
            tasks = ((np.array(clean[i:i + batch_size]), c, s, params, seed, rows[i:i + batch_size], suite)
                     for s, i in chunks)
            results = zip(chunks, _imap(pool, _corrupt_chunk, tasks, window=2 * num_workers))
            if layout == "npy":
                _write_npy_corruption(out / f"{c}.npy", results, n, shape, bar)
            else:
                _write_corruption_folder(out, c, results, labels, stems, label_names, bar)
            seconds = time.perf_counter() - start
            manifest["corruptions"][c] = {"complete": True, "seconds": round(seconds, 3),
                                          "seconds_per_1000_images": round(1000 * seconds / (len(SEVERITIES) * n), 3)}
            _write_manifest(out, manifest)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    if layout == "folder" and all(_complete(out, c, layout, n, shape, manifest) for c in names):
        shutil.rmtree(cache, ignore_errors=True)  # the decoded clean images are only needed to resume
    manifest["skipped"] = skipped
    return manifest


def _imap(pool: ProcessPoolExecutor | None, fn: Any, tasks: Any, window: int) -> Any:
    """``map`` in order, through ``pool`` with at most ``window`` chunks in flight (bounded memory)."""
    if pool is None:
        yield from map(fn, tasks)
        return
    pending: deque[Any] = deque()
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _npy_ok(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return arr.shape == shape


def _decode_clean(decoded: Any, rows: np.ndarray, crop: int | None, shape: tuple[int, ...], path: Path,
                  progress: bool) -> np.ndarray:
    """Decode (and crop) the source images into ``path`` (written atomically); returns their labels."""
    from tqdm.auto import tqdm

    labels = np.empty(len(rows), dtype=np.int64)
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(rows), *shape))
        try:
            for k, r in enumerate(tqdm(rows, desc="decoding", disable=not progress, leave=False)):
                img, label = decoded[int(r)]
                a = _prepare(img, crop)
                if a.shape != shape:
                    raise ValueError(f"the source images have different sizes ({shape[:2]} and {a.shape[:2]} at "
                                     f"row {r}); give --crop SIZE to resize and centre-crop them")
                arr[k], labels[k] = a, label
            arr.flush()
        finally:
            del arr
    return labels


def _atomic_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _write_npy_corruption(path: Path, results: Any, n: int, shape: tuple[int, ...], bar: Any) -> None:
    """Fill ``path`` ((5 n, *shape), severity-major) from ``((severity, start), chunk)`` results, atomically."""
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(SEVERITIES) * n, *shape))
        try:
            for (s, i), chunk in results:
                arr[(s - 1) * n + i:(s - 1) * n + i + len(chunk)] = chunk
                bar.update(len(chunk))
            arr.flush()
        finally:
            del arr


def _write_tree(folder: Path, chunks: Any, labels: np.ndarray, stems: list[str], label_names: list[str]) -> None:
    """``folder/<class>/<stem>.JPEG`` from ``(images, start)`` chunks, written beside it and renamed into place."""
    tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for images, start in chunks:
        for k, img in enumerate(images):
            d = tmp / label_names[int(labels[start + k])]
            d.mkdir(exist_ok=True)
            _save_jpeg(np.asarray(img), d / f"{stems[start + k]}.JPEG")
    fsync_tree(tmp)
    replace_dir(tmp, folder)
    fsync_dir(folder.parent)


def _write_corruption_folder(out: Path, corruption: str, results: Any, labels: np.ndarray, stems: list[str],
                             label_names: list[str], bar: Any) -> None:
    """``out/<corruption>/<severity>/<class>/<stem>.JPEG``; the corruption's folder is renamed into place when done."""
    tmp = out / f".{corruption}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for s in SEVERITIES:
        (tmp / str(s)).mkdir(parents=True)
    for (s, i), chunk in results:
        for k, img in enumerate(chunk):
            d = tmp / str(s) / label_names[int(labels[i + k])]
            d.mkdir(exist_ok=True)
            _save_jpeg(img, d / f"{stems[i + k]}.JPEG")
        bar.update(len(chunk))
    fsync_tree(tmp)
    replace_dir(tmp, out / corruption)
    fsync_dir(out)


def _complete(out: Path, corruption: str, layout: str, n: int, shape: tuple[int, ...],
              manifest: dict[str, Any]) -> bool:
    """Whether a corruption was fully written by an earlier run with the same settings."""
    if not manifest["corruptions"].get(corruption, {}).get("complete"):
        return False
    if layout == "npy":
        path = out / f"{corruption}.npy"
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return False
        return arr.dtype == np.uint8 and arr.shape == (len(SEVERITIES) * n, *shape)
    return all((out / corruption / str(s)).is_dir() for s in SEVERITIES)
