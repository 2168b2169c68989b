"""Readers for corruption and perturbation benchmarks in their official on-disk layouts.

============================  ====================================================================================
layout                        files
============================  ====================================================================================
CIFAR-10-C / CIFAR-100-C      ``<root>/<corruption>.npy`` uint8 (5 K, H, W, 3), severity-major (rows
(and ``make-c --layout npy``)  ``[(s-1) K, s K)`` = severity s), ``<root>/labels.npy`` (5 K,) integer; ``make-c``
                              adds ``clean.npy`` (K, H, W, 3) and ``make_c.json``
CIFAR-10-C-bar               the same, with the 10 C-bar corruptions (``make-c --suite c-bar``; the original
                              ``make_cifar10_c_bar.py`` writes it without clean.npy)
ImageNet-C / ImageNet-3DCC    ``<root>/<corruption>/<1..5>/<class>/<image>`` (also with a group level,
(and ``make-c --layout        ``<root>/<group>/<corruption>/<severity>/...``); ``make-c`` adds ``clean/<class>/``.
folder``)                     Class folders map to indices by the model's label names when they all appear there,
                              else by ImageNet-1k's wnid order for 1000-class models, else in sorted order
ImageNet-P                    ``<root>/<perturbation>/<class>/<video>.mp4`` (decoded with OpenCV, BGR to RGB) or
                              ``.npy`` (T, H, W, 3) uint8 frames; harder noise levels in ``<perturbation>_2``/``_3``
CIFAR-10-P / CIFAR-100-P      ``<root>/<perturbation>.npy`` uint8 (N, T, H, W, 3), optional ``labels.npy`` (N,)
============================  ====================================================================================

A -C-bar benchmark is told apart by its manifest (``"suite": "c-bar"``) or, without one, by its corruption names
(all of them C-bar corruptions): :func:`corruption_suite`; ``benchmark.info["suite"]`` records it.

Subsets (``max_per_cell``): :func:`subset_indices` draws the same seeded, sorted subset of positions in every cell
of equal size, so the clean set and all (corruption, severity) cells of a -C set see the same images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timm_dynmix.data.sampler import balanced_subset_indices, subset_indices
from timm_dynmix.fileio import IMAGE_EXTENSIONS, read_json
from timm_dynmix.robustness.corruptions import ALL_CORRUPTIONS, CORRUPTIONS
from timm_dynmix.robustness.corruptions_cbar import CBAR_CORRUPTIONS, IMAGENET_CBAR_CORRUPTIONS, IMAGENET_CBAR_ONLY
from timm_dynmix.robustness.metrics import IMAGENET_3DCC_CORRUPTIONS, IMAGENET_P_EXTRA, IMAGENET_P_PERTURBATIONS

__all__ = [
    "BenchmarkError", "Cell", "CorruptionBenchmark", "Video", "PerturbationSet", "PerturbationBenchmark",
    "subset_indices", "balanced_subset_indices", "read_npy_c", "read_folder_c", "read_perturbations", "detect_layout",
    "MANIFEST_NAME", "IMAGE_EXTENSIONS", "BENCHMARKS", "BENCHMARK_NAMES", "corruption_suite", "cbar_benchmark_name",
]

MANIFEST_NAME = "make_c.json"
# display names of benchmarks and datasets (reports, model cards)
BENCHMARK_NAMES = {
    "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar10-c": "CIFAR-10-C", "cifar100-c": "CIFAR-100-C",
    "cifar10-p": "CIFAR-10-P", "cifar100-p": "CIFAR-100-P", "imagenet-c": "ImageNet-C",
    "imagenet-3dcc": "ImageNet-3DCC", "imagenet-p": "ImageNet-P", "tiny-imagenet-c": "Tiny-ImageNet-C",
    "cifar10-c-bar": "CIFAR-10-C-bar", "cifar100-c-bar": "CIFAR-100-C-bar", "imagenet-c-bar": "ImageNet-C-bar",
}
# the benchmarks `timm-dynmix eval --benchmark` knows by name (else: a folder made by make-c)
BENCHMARKS = ("cifar10", "cifar100", "cifar10-c", "cifar100-c", "imagenet-c", "imagenet-3dcc", "imagenet-p",
              "cifar10-p", "cifar100-p", "cifar10-c-bar", "imagenet-c-bar")
_CBAR_ALL = frozenset(CBAR_CORRUPTIONS) | frozenset(IMAGENET_CBAR_CORRUPTIONS)
_WNID = re.compile(r"^n\d{8}$")


class BenchmarkError(ValueError):
    """A benchmark folder is missing files or does not have the expected layout; the message says which."""


# ---- image sources -------------------------------------------------------------------------------------------------
class ArraySource:
    """Rows of a uint8 (N, H, W, 3) array (usually memory-mapped) and their labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray):
        self.images, self.labels, self.rows = images, labels, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, i: int) -> np.ndarray:
        return np.array(self.images[self.rows[i]])  # a writable copy of the (memory-mapped) row

    def label(self, i: int) -> int:
        return int(self.labels[self.rows[i]])


class FileSource:
    """Image files and their labels; decoded with Pillow to RGB."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int]):
        self.paths, self.labels = list(paths), np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as img:
                return np.array(img.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as e:
            raise BenchmarkError(f"cannot decode {self.paths[i]}: {e}") from None

    def label(self, i: int) -> int:
        return int(self.labels[i])


class DatasetSource:
    """Rows of a dataset loaded by :func:`timm_dynmix.data.datasets.load_image_data` (decoded in guarded code).

    ``label_map[dataset label]`` gives the model's class index when they differ (e.g. a clean image folder holding
    some ImageNet classes); default: the dataset's labels.
    """

    def __init__(self, decoded: Any, rows: np.ndarray, label_map: np.ndarray | None = None):
        self.decoded, self.rows = decoded, np.asarray(rows, dtype=np.int64)
        self.label_map = label_map

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, i: int) -> np.ndarray:
        return np.array(self.decoded[int(self.rows[i])][0])

    def label(self, i: int) -> int:
        label = int(self.decoded[int(self.rows[i])][1])
        return label if self.label_map is None else int(self.label_map[label])


@dataclass
class Cell:
    """One evaluated set: a (corruption, severity) cell, or the clean set (``corruption="clean"``, severity 0)."""

    corruption: str
    severity: int
    source: Any
    resize_crop: bool = False  # apply Resize(256) + CenterCrop(224) (clean ImageNet validation images)

    @property
    def is_clean(self) -> bool:
        return self.corruption == "clean"

    def __len__(self) -> int:
        return len(self.source)


@dataclass
class CorruptionBenchmark:
    """The cells of a -C benchmark (clean first when present) and what is known about it."""

    name: str
    root: Path | None
    cells: list[Cell]
    class_names: list[str] | None = None
    class_to_index: dict[str, int] | None = None
    layout: str = "npy"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def corruptions(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.cells:
            if not c.is_clean:
                seen.setdefault(c.corruption)
        return list(seen)

    @property
    def clean(self) -> Cell | None:
        return next((c for c in self.cells if c.is_clean), None)

    def num_images(self) -> int:
        return sum(len(c) for c in self.cells)


def _select(found: Sequence[str], wanted: Sequence[str] | None, root: Path, what: str) -> list[str]:
    if wanted is None:
        return list(found)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise BenchmarkError(f"{what} {', '.join(missing)} not found in {root}; it has: "
                             f"{', '.join(found) if found else 'none'}")
    return list(wanted)


def _order(names: Sequence[str]) -> list[str]:
    """Known corruptions in the benchmark order, then the others sorted."""
    known = [c for c in ALL_CORRUPTIONS + CBAR_CORRUPTIONS + IMAGENET_CBAR_ONLY + IMAGENET_3DCC_CORRUPTIONS
             if c in names]
    return known + sorted(c for c in names if c not in known)


def corruption_suite(names: Sequence[str], manifest: dict[str, Any] | None = None) -> str:
    """``"c-bar"`` for a -C-bar benchmark (its make-c manifest says so, or all its corruptions are C-bar ones), else
    ``"c"``."""
    if manifest and manifest.get("suite"):
        return str(manifest["suite"])
    return "c-bar" if names and all(n in _CBAR_ALL for n in names) else "c"


def cbar_benchmark_name(names: Sequence[str], manifest: dict[str, Any] | None = None, layout: str = "npy") -> str:
    """The benchmark name of a -C-bar folder: ``imagenet-c-bar`` (ImageNet parameters, an ImageNet-C-bar-only
    corruption, or a folder tree without manifest), else ``cifar10-c-bar`` / ``cifar100-c-bar`` (a make-c source of
    10 / 100 classes, or npy arrays without manifest, as the original script writes), else ``cifar-c-bar``."""
    manifest = manifest or {}
    if manifest.get("params") == "imagenet" or any(n in IMAGENET_CBAR_ONLY for n in names) \
            or (not manifest and layout == "folder"):
        return "imagenet-c-bar"
    if not manifest:  # the original script's CIFAR-10-C-bar arrays
        return "cifar10-c-bar"
    return {10: "cifar10-c-bar", 100: "cifar100-c-bar"}.get(len(manifest.get("label_names") or []), "cifar-c-bar")


def _check_severities(severities: Sequence[int] | None) -> list[int]:
    if severities is None:
        return [1, 2, 3, 4, 5]
    out = []
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= int(s) <= 5:
            raise ValueError(f"severities must be integers in 1..5, got {s!r}")
        if int(s) not in out:
            out.append(int(s))
    if not out:
        raise ValueError("severities must not be empty")
    return sorted(out)


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_NAME
    return read_json(path, "make-c manifest", BenchmarkError) if path.is_file() else {}


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BenchmarkError(f"cannot read {path} as a .npy array: {e}") from None


def _check_images_array(arr: np.ndarray, path: Path) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise BenchmarkError(f"{path.name} must be a uint8 array (N, H, W, 3) of RGB images, got {arr.dtype} "
                             f"{arr.shape}")


def read_npy_c(root: str | os.PathLike[str], corruptions: Sequence[str] | None = None,
               severities: Sequence[int] | None = None, max_per_cell: int | None = None, seed: int = 0,
               name: str = "cifar-c") -> CorruptionBenchmark:
    """Read a CIFAR-10-C-style folder (see the module docstring); every ``*.npy`` but labels/clean is a corruption."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"no benchmark folder at {root}")
    sev = _check_severities(severities)
    labels_path = root / "labels.npy"
    if not labels_path.is_file():
        raise BenchmarkError(f"{root} has no labels.npy: a CIFAR-10-C-style folder holds <corruption>.npy files "
                             f"and labels.npy")
    labels = np.asarray(_load_npy(labels_path))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BenchmarkError(f"labels.npy must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) == 0 or len(labels) % 5:
        raise BenchmarkError(f"labels.npy has {len(labels)} labels: expected 5 severity blocks of equal size")
    per_sev = len(labels) // 5
    found = _order([p.stem for p in root.glob("*.npy") if p.stem not in ("labels", "clean")
                    and not p.name.startswith(".")])
    if not found:
        raise BenchmarkError(f"{root} has labels.npy but no <corruption>.npy file")
    chosen = _select(found, corruptions, root, "corruption")
    rows = subset_indices(per_sev, max_per_cell, seed)
    manifest = _read_manifest(root)
    cells: list[Cell] = []
    clean_path = root / "clean.npy"
    if clean_path.is_file():
        clean = _load_npy(clean_path)
        _check_images_array(clean, clean_path)
        if len(clean) != per_sev:
            raise BenchmarkError(f"clean.npy has {len(clean)} images but each severity block of labels.npy has "
                                 f"{per_sev}")
        cells.append(Cell("clean", 0, ArraySource(clean, labels[:per_sev], rows)))
    for c in chosen:
        path = root / f"{c}.npy"
        arr = _load_npy(path)
        _check_images_array(arr, path)
        if len(arr) != len(labels):
            raise BenchmarkError(f"label count mismatch: {path.name} has {len(arr)} images but labels.npy has "
                                 f"{len(labels)} labels")
        for s in sev:
            cells.append(Cell(c, s, ArraySource(arr, labels, rows + (s - 1) * per_sev)))
    names = manifest.get("label_names")
    return CorruptionBenchmark(name=name, root=root, cells=cells, class_names=list(names) if names else None,
                               layout="npy", info={"images_per_severity": per_sev, "manifest": manifest,
                                                   "suite": corruption_suite(found, manifest)})


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    classes = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = _image_files(d)
        if files:
            classes[d.name] = files
    return classes


def _is_severity_dir(p: Path) -> bool:
    return p.is_dir() and p.name in {"1", "2", "3", "4", "5"}


def _find_corruption_dirs(root: Path) -> dict[str, Path]:
    """``{corruption: folder}`` of ``root/<c>/<s>`` and ``root/<group>/<c>/<s>`` layouts."""
    found: dict[str, Path] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "clean" and not p.name.startswith(".")):
        if any(_is_severity_dir(s) for s in d.iterdir()):
            found[d.name] = d
            continue
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):  # a group level (noise/, blur/, ...)
            if any(_is_severity_dir(s) for s in sub.iterdir()):
                if sub.name in found:
                    raise BenchmarkError(f"corruption {sub.name} appears twice under {root}")
                found[sub.name] = sub
    return found


def resolve_classes(names: Sequence[str], model_labels: Sequence[str] | None = None,
                    num_classes: int | None = None) -> dict[str, int]:
    """Map class folder names to model output indices (see the module docstring for the rules)."""
    names = sorted(names)
    if model_labels and all(n in model_labels for n in names):
        pos = {n: i for i, n in enumerate(model_labels)}
        return {n: pos[n] for n in names}
    if num_classes == 1000 and all(_WNID.match(n) for n in names):
        from timm.data.imagenet_info import ImageNetInfo

        wnids = ImageNetInfo().label_names()
        pos = {n: i for i, n in enumerate(wnids)}
        unknown = [n for n in names if n not in pos]
        if unknown:
            raise BenchmarkError(f"class folders {unknown[:5]} are not ImageNet-1k wnids")
        return {n: pos[n] for n in names}
    if num_classes is not None and len(names) > num_classes:
        raise BenchmarkError(f"label count mismatch: the benchmark has {len(names)} classes but the model has "
                             f"{num_classes} outputs")
    return {n: i for i, n in enumerate(names)}


def read_folder_c(root: str | os.PathLike[str], corruptions: Sequence[str] | None = None,
                  severities: Sequence[int] | None = None, max_per_cell: int | None = None, seed: int = 0,
                  name: str = "imagenet-c", model_labels: Sequence[str] | None = None,
                  num_classes: int | None = None) -> CorruptionBenchmark:
    """Read an ImageNet-C-style folder tree (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"no benchmark folder at {root}")
    sev = _check_severities(severities)
    dirs = _find_corruption_dirs(root)
    if not dirs:
        raise BenchmarkError(f"no <corruption>/<severity>/<class>/<image> folders found under {root}")
    chosen = _select(_order(list(dirs)), corruptions, root, "corruption")
    listed: list[tuple[str, int, dict[str, list[Path]]]] = []
    class_names: list[str] | None = None
    reference = ""
    for c in chosen:
        for s in sev:
            folder = dirs[c] / str(s)
            if not folder.is_dir():
                raise BenchmarkError(f"missing severity folder {folder}")
            classes = _class_folders(folder)
            if not classes:
                raise BenchmarkError(f"no <class>/<image> files in {folder}")
            if class_names is None:
                class_names, reference = sorted(classes), f"{c}/{s}"
            elif sorted(classes) != class_names:
                extra = sorted(set(classes) - set(class_names))[:3]
                lost = sorted(set(class_names) - set(classes))[:3]
                raise BenchmarkError(f"{c}/{s} has different class folders than {reference} (extra: {extra}, "
                                     f"missing: {lost})")
            listed.append((c, s, classes))
    assert class_names is not None
    clean_dir = root / "clean"
    clean_classes = _class_folders(clean_dir) if clean_dir.is_dir() else {}
    if clean_classes and sorted(clean_classes) != class_names:
        raise BenchmarkError(f"{clean_dir} has different class folders than {reference}")
    mapping = resolve_classes(class_names, model_labels, num_classes)

    def cell(cname: str, severity: int, classes: dict[str, list[Path]]) -> Cell:
        paths = [p for n in class_names for p in classes[n]]
        labels = [mapping[n] for n in class_names for _ in classes[n]]
        keep = subset_indices(len(paths), max_per_cell, seed)
        return Cell(cname, severity, FileSource([paths[i] for i in keep], [labels[i] for i in keep]))

    cells = [cell("clean", 0, clean_classes)] if clean_classes else []
    cells += [cell(c, s, classes) for c, s, classes in listed]
    sizes = {len(c) for c in cells}
    manifest = _read_manifest(root)
    return CorruptionBenchmark(name=name, root=root, cells=cells, class_names=class_names, class_to_index=mapping,
                               layout="folder", info={"images_per_cell": sorted(sizes), "manifest": manifest,
                                                      "suite": corruption_suite(list(dirs), manifest)})


def detect_layout(root: str | os.PathLike[str]) -> str:
    """``"npy"`` (CIFAR-10-C style), ``"folder"`` (ImageNet-C style) or ``"p-npy"``/``"p-folder"`` (-P sets)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"no benchmark folder at {root}")
    npys = sorted(p for p in root.glob("*.npy") if p.stem not in ("labels", "clean") and not p.name.startswith("."))
    if (root / "labels.npy").is_file() and npys:
        return "p-npy" if _load_npy(npys[0]).ndim == 5 else "npy"
    if npys and _load_npy(npys[0]).ndim == 5:
        return "p-npy"
    if _find_corruption_dirs(root):
        return "folder"
    for d in (p for p in root.iterdir() if p.is_dir()):
        for sub in (p for p in d.iterdir() if p.is_dir()):
            if any(f.suffix.lower() in (".mp4", ".npy") for f in sub.iterdir() if f.is_file()):
                return "p-folder"
    raise BenchmarkError(f"cannot tell the layout of {root}: expected <corruption>.npy + labels.npy, "
                         f"<corruption>/<severity>/<class>/<image> folders, or -P videos")


# ---- perturbations (ImageNet-P / CIFAR-P) --------------------------------------------------------------------------
@dataclass
class Video:
    """One perturbation sequence: frames from an mp4/npy file or rows of a (N, T, H, W, 3) array."""

    label: int
    path: Path | None = None
    array: np.ndarray | None = None
    row: int = 0

    def frames(self) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames."""
        if self.array is not None:
            return np.array(self.array[self.row])  # a writable copy of the (memory-mapped) row
        assert self.path is not None
        if self.path.suffix.lower() == ".npy":
            arr = np.load(self.path, allow_pickle=False)
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                raise BenchmarkError(f"{self.path} must hold uint8 frames (T, H, W, 3), got {arr.dtype} {arr.shape}")
            return arr
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        frames = []
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame[..., ::-1])
        finally:
            cap.release()
        if not frames:
            raise BenchmarkError(f"cannot decode any frame of {self.path} (OpenCV VideoCapture)")
        return np.ascontiguousarray(np.stack(frames))


@dataclass
class PerturbationSet:
    """The videos of one perturbation; ``noise`` sequences are compared with their first frame."""

    name: str
    videos: list[Video]

    @property
    def noise(self) -> bool:
        return "noise" in self.name

    def __len__(self) -> int:
        return len(self.videos)


@dataclass
class PerturbationBenchmark:
    name: str
    root: Path
    sets: list[PerturbationSet]
    difficulty: int = 1
    has_labels: bool = True
    class_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _order_p(names: Sequence[str]) -> list[str]:
    known = [p for p in IMAGENET_P_PERTURBATIONS + IMAGENET_P_EXTRA if p in names]
    return known + sorted(p for p in names if p not in known)


def read_perturbations(root: str | os.PathLike[str], perturbations: Sequence[str] | None = None, difficulty: int = 1,
                       max_videos: int | None = None, seed: int = 0, name: str = "imagenet-p",
                       model_labels: Sequence[str] | None = None,
                       num_classes: int | None = None) -> PerturbationBenchmark:
    """Read an ImageNet-P folder tree or a CIFAR-P folder of ``<perturbation>.npy`` arrays (module docstring).

    ``difficulty`` 2 or 3 reads the harder noise sequences from ``<perturbation>_<difficulty>`` (ImageNet-P) and is
    the frame stride of the other perturbations (applied by the metrics).
    """
    root = Path(root)
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    layout = detect_layout(root)
    sets: list[PerturbationSet] = []
    if layout == "p-npy":
        found = _order_p([p.stem for p in root.glob("*.npy") if p.stem != "labels" and not p.name.startswith(".")])
        chosen = _select(found, perturbations, root, "perturbation")
        labels = None
        if (root / "labels.npy").is_file():
            labels = np.asarray(_load_npy(root / "labels.npy"))
        for p in chosen:
            arr = _load_npy(root / f"{p}.npy")
            if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3:
                raise BenchmarkError(f"{p}.npy must be a uint8 array (N, T, H, W, 3), got {arr.dtype} {arr.shape}")
            if labels is not None and len(labels) != len(arr):
                raise BenchmarkError(f"label count mismatch: {p}.npy has {len(arr)} videos but labels.npy has "
                                     f"{len(labels)} labels")
            rows = subset_indices(len(arr), max_videos, seed)
            sets.append(PerturbationSet(p, [Video(int(labels[r]) if labels is not None else -1, array=arr, row=int(r))
                                            for r in rows]))
        return PerturbationBenchmark(name, root, sets, difficulty, has_labels=labels is not None)
    if layout != "p-folder":
        raise BenchmarkError(f"{root} is a -C benchmark ({layout} layout), not a -P one")
    base = [d.name for d in root.iterdir() if d.is_dir() and not re.search(r"_[23]$", d.name)]
    chosen = _select(_order_p(base), perturbations, root, "perturbation")
    class_names: list[str] | None = None
    for p in chosen:
        folder = root / (f"{p}_{difficulty}" if "noise" in p and difficulty > 1 else p)
        if not folder.is_dir():
            raise BenchmarkError(f"missing {folder} (difficulty {difficulty} of {p})")
        classes = {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in (".mp4", ".npy"))
                   for d in sorted(folder.iterdir()) if d.is_dir()}
        classes = {k: v for k, v in classes.items() if v}
        if not classes:
            raise BenchmarkError(f"no <class>/<video>.mp4 files in {folder}")
        if class_names is None:
            class_names = sorted(classes)
        mapping = resolve_classes(sorted(classes), model_labels, num_classes)
        videos = [Video(mapping[c], path=f) for c in sorted(classes) for f in classes[c]]
        keep = subset_indices(len(videos), max_videos, seed)
        sets.append(PerturbationSet(p, [videos[i] for i in keep]))
    return PerturbationBenchmark(name, root, sets, difficulty, has_labels=True, class_names=class_names)


def benchmark_corruption_lists(names: Sequence[str], benchmark: str) -> tuple[list[str], list[str]]:
    """Split evaluated corruptions into (benchmark ones, reported-separately ones) for a benchmark name."""
    if benchmark == "imagenet-3dcc":
        main = [c for c in IMAGENET_3DCC_CORRUPTIONS if c in names]
    elif benchmark.endswith("c-bar"):
        suite = IMAGENET_CBAR_CORRUPTIONS if benchmark.startswith("imagenet") else CBAR_CORRUPTIONS
        main = [c for c in suite if c in names]
    else:
        main = [c for c in CORRUPTIONS if c in names]
    return main, [c for c in names if c not in main]

