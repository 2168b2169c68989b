"""Image classification datasets through HF ``datasets``: hub repos, local folders and files, an embedded set.

``load_image_data(name, ...)`` resolves a dataset name to train/eval splits, image and label columns, class names
and provenance:

=================  =========================================================================================
name               source
=================  =========================================================================================
``digits``         scikit-learn's 8x8 handwritten digits (1,797 real scans shipped inside scikit-learn),
                   upsampled to 32x32 RGB; a fixed stratified 80/20 train/test split. Needs no network.
``cifar10``        ``uoft-cs/cifar10`` (``img``, ``label``), splits train/test
``cifar100``       ``uoft-cs/cifar100`` (``img``, ``fine_label``), splits train/test
``imagenet``       ``ILSVRC/imagenet-1k`` (``image``, ``label``; gated), splits train/validation; with
                   ``streaming=True``: ``timm/imagenet-1k-wds`` (``jpg``, ``cls``)
``org/name``       any image-classification repo on the Hub (columns detected from its features)
a local path       a ``save_to_disk`` folder, a folder of parquet or arrow files, an image folder with one
                   sub-folder per class (``train/``, ``test/`` sub-folders for splits), or an npz archive (a
                   file, or a folder of ``*_<split>_jpeg.npz`` / ``*_<split>_uint8.npz`` files, as the
                   CIFAR-10 copy this project is tested on)
=================  =========================================================================================

``data_dir`` points a named dataset at a local copy (any of the local forms above). Images are never decoded by
``datasets``: columns are cast to ``Image(decode=False)`` and :class:`DecodedImageDataset` decodes them in
guarded code, replacing an undecodable image by a fixed fallback sample (the first decodable row), the same way
on every rank, with a logged warning and a count.

Offline: when the Hub cannot be reached within a few seconds, offline mode is switched on for this process, so
cached datasets still load and uncached ones fail at once with one message that says what to do.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

from timm_dynmix.fileio import IMAGE_EXTENSIONS

__all__ = ["ImageData", "KNOWN_DATASETS", "load_image_data", "DecodedImageDataset", "DecodedIterableDataset",
           "decode_image", "ensure_hub_reachable_or_offline", "DatasetLoadError"]

logger = logging.getLogger(__name__)


class DatasetLoadError(ValueError):
    """A dataset could not be found, reached or understood; the message says what to do."""


@dataclass(frozen=True)
class _Known:
    repo: str
    image: str
    label: str
    train: str
    eval: str
    input_size: int
    streaming_repo: str | None = None
    streaming_image: str | None = None
    streaming_label: str | None = None


KNOWN_DATASETS: dict[str, _Known] = {
    "cifar10": _Known("uoft-cs/cifar10", "img", "label", "train", "test", 32),
    "cifar100": _Known("uoft-cs/cifar100", "img", "fine_label", "train", "test", 32),
    "imagenet": _Known("ILSVRC/imagenet-1k", "image", "label", "train", "validation", 224,
                       "timm/imagenet-1k-wds", "jpg", "cls"),
    "digits": _Known("sklearn:digits", "image", "label", "train", "test", 32),
}



@dataclass
class ImageData:
    """A resolved image-classification dataset.

    Attributes:
        train: The training split (``datasets.Dataset``, or ``IterableDataset`` when streaming).
        eval: The evaluation split, or None when the source has none.
        image_column: Column holding the encoded images (cast to ``Image(decode=False)``).
        label_column: Column holding integer class labels.
        label_names: Class names, index = label.
        source: Where the data came from (repo id, path or ``sklearn:digits``).
        provenance: One line for results and model cards.
        input_size: The dataset's native (or customary) image size in pixels.
        streaming: Whether the splits are streamed.
    """

    train: Any
    eval: Any
    image_column: str
    label_column: str
    label_names: list[str]
    source: str
    provenance: str
    input_size: int
    streaming: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


# ----------------------------------------------------------------------------------------------------------------
# Hub reachability
def ensure_hub_reachable_or_offline(timeout: float = 3.0) -> bool:
    """Return True when the Hub answers a TCP connect within ``timeout`` s; else switch this process offline.

    ``datasets`` and ``huggingface_hub`` retry unreachable hosts for about half a minute; switching their offline
    flags makes cached data load and uncached data fail at once. Respects ``HF_HUB_OFFLINE`` when already set.
    """
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst

    if hconst.HF_HUB_OFFLINE or dconfig.HF_HUB_OFFLINE:
        return False
    url = urlparse(hconst.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError as e:
        logger.warning("the Hugging Face Hub (%s) is unreachable (%s): using only local files and the cache", host, e)
        hconst.HF_HUB_OFFLINE = True
        dconfig.HF_HUB_OFFLINE = True
        os.environ["HF_HUB_OFFLINE"] = "1"
        return False


# ----------------------------------------------------------------------------------------------------------------
# image decoding
def decode_image(value: Any) -> Image.Image:
    """Decode an image cell (``{"bytes", "path"}`` dict, raw bytes, a path or a PIL image) to a PIL RGB image."""
    if isinstance(value, Image.Image):
        img = value
    else:
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data, path = bytes(value), None
        elif isinstance(value, (str, os.PathLike)):
            data, path = None, value
        else:
            raise TypeError(f"cannot decode an image from {type(value).__name__}")
        if data is not None:
            img = Image.open(io.BytesIO(data))
        elif path:
            img = Image.open(path)
        else:
            raise ValueError("image cell has neither bytes nor a path")
        img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


class _Fallback:
    """Finds the fallback sample (first decodable row) and counts substitutions across DataLoader workers."""

    def __init__(self) -> None:
        # one slot per process (main + up to 255 workers), in shared memory so the main process can read them
        self.counts = torch.zeros(256, dtype=torch.int64).share_memory_()
        self.sample: tuple[Image.Image, int] | None = None

    def record(self, index: Any, error: BaseException) -> None:
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else min(info.id + 1, 255)
        self.counts[slot] += 1
        logger.warning("undecodable image at %s (%s: %s): replaced by the fallback sample", index,
                       type(error).__name__, error)

    @property
    def count(self) -> int:
        return int(self.counts.sum())


_DECODE_ERRORS = (OSError, ValueError, SyntaxError, TypeError, Image.DecompressionBombError, EOFError)


class DecodedImageDataset(torch.utils.data.Dataset[tuple[Any, int]]):
    """Map-style dataset of ``(PIL RGB image, int label)`` decoded from an HF dataset in guarded code.

    An image that fails to decode is replaced by the fallback sample (the first decodable row, image and label),
    identically on every rank; ``fallback_count`` sums the substitutions of all worker processes.
    """

    def __init__(self, hf_dataset: Any, image_column: str, label_column: str,
                 transform: Callable[..., Any] | None = None):
        self.data = hf_dataset
        self.image_column = image_column
        self.label_column = label_column
        self.transform = transform
        self._fallback = _Fallback()
        self._fallback.sample = self._find_fallback()

    def _find_fallback(self) -> tuple[Image.Image, int]:
        for i in range(min(len(self.data), 1000)):
            row = self.data[i]
            try:
                return decode_image(row[self.image_column]), int(row[self.label_column])
            except _DECODE_ERRORS:
                continue
        raise DatasetLoadError("none of the first 1000 images of the dataset can be decoded")

    @property
    def fallback_count(self) -> int:
        return self._fallback.count

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        row = self.data[int(index)]
        try:
            img, label = decode_image(row[self.image_column]), int(row[self.label_column])
        except _DECODE_ERRORS as e:
            self._fallback.record(index, e)
            if self._fallback.sample is None:  # set in __init__; None only if the class is misused
                raise RuntimeError("no fallback sample to replace an undecodable image with") from e
            img, label = self._fallback.sample
            img = img.copy()
        return (self.transform(img) if self.transform is not None else img), label


class DecodedIterableDataset(torch.utils.data.IterableDataset[tuple[int, Any, int]]):
    """Streaming counterpart of :class:`DecodedImageDataset`: yields ``(index, image, label)``.

    ``index`` is a unique running number (``position * world_size + rank``) so that per-sample seeds stay distinct
    across ranks. The split is sharded across ranks with ``datasets.distributed.split_dataset_by_node`` and across
    DataLoader workers by ``datasets`` itself.
    """

    def __init__(self, hf_iterable: Any, image_column: str, label_column: str, rank: int = 0, world_size: int = 1):
        from datasets.distributed import split_dataset_by_node

        self.data = split_dataset_by_node(hf_iterable, rank=rank, world_size=world_size) if world_size > 1 \
            else hf_iterable
        self.image_column = image_column
        self.label_column = label_column
        self.rank = rank
        self.world_size = world_size
        self._fallback = _Fallback()

    @property
    def fallback_count(self) -> int:
        return self._fallback.count

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, Image.Image, int]]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        for position, row in enumerate(self.data):
            index = (position * workers + worker) * self.world_size + self.rank
            try:
                img, label = decode_image(row[self.image_column]), int(row[self.label_column])
            except _DECODE_ERRORS as e:
                if self._fallback.sample is None:
                    logger.warning("undecodable image at stream position %d before any fallback: skipped", index)
                    continue
                self._fallback.record(index, e)
                img, label = self._fallback.sample
                img = img.copy()
            if self._fallback.sample is None:
                self._fallback.sample = (img.copy(), label)
            yield index, img, label


# ----------------------------------------------------------------------------------------------------------------
# sources
@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Any, Any, list[str]]:
    """scikit-learn's digits as an HF DatasetDict of PNG-encoded 32x32 RGB images (a fixed stratified split)."""
    import datasets
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)

    def encode(i: int) -> dict[str, Any]:
        img = Image.fromarray(images[i], mode="L").resize((32, 32), Image.Resampling.BICUBIC).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    names = [str(d) for d in range(10)]
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.ClassLabel(names=names)})
    splits = {}
    for split, idx in (("train", np.sort(idx_train)), ("test", np.sort(idx_test))):
        splits[split] = datasets.Dataset.from_dict(
            {"image": [encode(int(i)) for i in idx], "label": [int(labels[i]) for i in idx]}, features=features)
    return splits["train"], splits["test"], names


def _npz_splits(path: Path) -> dict[str, Path]:
    """Map split name -> npz file for an npz archive file or a folder of ``*_<split>_{jpeg,uint8}.npz`` files."""
    if path.is_file():
        return {"train": path}
    found: dict[str, Path] = {}
    for f in sorted(path.glob("*.npz")):
        parts = f.stem.split("_")
        if len(parts) >= 2 and parts[-1] in ("jpeg", "uint8"):
            split = parts[-2]
            if split not in found or parts[-1] == "jpeg":  # prefer the JPEG bytes: nothing to re-encode
                found[split] = f
        else:
            found.setdefault(f.stem, f)
    return found


def _npz_dataset(file: Path) -> tuple[Any, list[str] | None]:
    import datasets

    with np.load(file, allow_pickle=False) as z:
        keys = set(z.files)
        names = [str(n) for n in z["class_names"]] if "class_names" in keys else None
        if {"jpeg", "offsets", "labels"} <= keys:
            blob, offsets, labels = z["jpeg"], z["offsets"], z["labels"]
            cells = [{"bytes": blob[offsets[i]:offsets[i + 1]].tobytes(), "path": None} for i in range(len(labels))]
        else:
            x_key = next((k for k in sorted(keys) if k.startswith("x")), None)
            y_key = next((k for k in sorted(keys) if k.startswith("y") or k == "labels"), None)
            if x_key is None or y_key is None:
                raise DatasetLoadError(f"npz archive {file.name} has arrays {sorted(keys)}; expected jpeg/offsets/"
                                       f"labels (JPEG bytes) or x_*/y_* (uint8 images NHWC and labels)")
            x, labels = z[x_key], z[y_key]
            if x.dtype != np.uint8 or x.ndim not in (3, 4):
                raise DatasetLoadError(f"npz array {x_key} must be uint8 (N, H, W[, C]), got {x.dtype} {x.shape}")
            cells = []
            for a in x:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="PNG")
                cells.append({"bytes": buf.getvalue(), "path": None})
    labels = np.asarray(labels).astype(np.int64)
    if len(labels) != len(cells):
        raise DatasetLoadError(f"npz archive {file.name}: {len(cells)} images but {len(labels)} labels")
    label_feature = datasets.ClassLabel(names=names) if names else datasets.Value("int64")
    features = datasets.Features({"image": datasets.Image(decode=False), "label": label_feature})
    return datasets.Dataset.from_dict({"image": cells, "label": labels.tolist()}, features=features), names


def _is_image_folder(path: Path) -> bool:
    subdirs = [d for d in path.iterdir() if d.is_dir()]
    for d in subdirs[:50]:
        for f in d.rglob("*"):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                return True
    return False


def _load_local(path: Path, streaming: bool) -> tuple[dict[str, Any], list[str] | None]:
    """Load every split of a local dataset; returns ``({split: dataset}, label names or None)``."""
    import datasets

    if not path.exists():
        raise DatasetLoadError(f"no dataset at {path}: expected a save_to_disk folder, parquet/arrow files, an "
                               f"image folder or an npz archive")
    if path.suffix == ".npz" or (path.is_dir() and any(path.glob("*.npz"))):
        if streaming:
            raise DatasetLoadError("npz archives are loaded into memory; drop --streaming for them")
        splits, names = {}, None
        for split, f in _npz_splits(path).items():
            splits[split], names = _npz_dataset(f)
        return splits, names
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        if streaming:
            splits = {k: v.to_iterable_dataset() for k, v in splits.items()}
        return splits, None
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    for builder, exts in (("parquet", {".parquet"}), ("arrow", {".arrow"})):
        matched = [f for f in files if f.suffix in exts]
        if matched:
            by_split: dict[str, list[str]] = {}
            for f in matched:
                split = next((s for s in ("train", "test", "validation", "val") if s in f.relative_to(
                    path if path.is_dir() else path.parent).parts or f.stem.startswith(s)), "train")
                by_split.setdefault(split, []).append(str(f))
            ds = datasets.load_dataset(builder, data_files=by_split, streaming=streaming)
            return dict(ds), None
    if path.is_dir() and _is_image_folder(path):
        ds = datasets.load_dataset("imagefolder", data_dir=str(path), streaming=streaming)
        return dict(ds), None
    raise DatasetLoadError(f"cannot tell what kind of dataset {path} is: expected a save_to_disk folder, parquet or "
                           f"arrow files, an image folder (one sub-folder per class) or an npz archive")


def _load_hub(repo: str, streaming: bool) -> dict[str, Any]:
    import datasets

    ensure_hub_reachable_or_offline()
    try:
        ds = datasets.load_dataset(repo, streaming=streaming)
    except (ConnectionError, OSError) as e:
        raise DatasetLoadError(
            f"dataset {repo!r} is not in the local cache and the Hugging Face Hub cannot be reached ({e}). "
            f"On a machine with internet, run `datasets.load_dataset({repo!r}).save_to_disk(DIR)` and pass "
            f"--data-dir DIR (or give a local folder as --dataset)") from None
    except datasets.exceptions.DatasetNotFoundError as e:
        raise DatasetLoadError(f"dataset {repo!r} was not found on the Hub (or is gated and you are not logged in):"
                               f" {e}") from None
    return dict(ds)


def _pick_column(features: dict[str, Any], wanted: str | None, kind: str, candidates: tuple[str, ...],
                 source: str) -> str:
    import datasets

    names = list(features)
    if wanted is not None:
        if wanted not in features:
            raise DatasetLoadError(f"{kind} column {wanted!r} not in dataset {source}; its columns: {names}")
        return wanted
    if kind == "image":
        typed = [n for n, f in features.items() if isinstance(f, datasets.Image)]
    else:
        typed = [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)]
    for n in typed + [c for c in candidates if c in features]:
        return n
    raise DatasetLoadError(f"cannot find the {kind} column of dataset {source} among {names}; "
                           f"pass --{kind}-column")


def _pick_split(splits: dict[str, Any], wanted: str | None, preferred: tuple[str, ...], source: str,
                required: bool) -> str | None:
    if wanted is not None:
        if wanted not in splits:
            raise DatasetLoadError(f"split {wanted!r} not in dataset {source}; its splits: {sorted(splits)}")
        return wanted
    for s in preferred:
        if s in splits:
            return s
    if required:
        raise DatasetLoadError(f"dataset {source} has no split named {' or '.join(preferred)}; "
                               f"its splits: {sorted(splits)}")
    return None


def load_image_data(
        name: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        train_split: str | None = None,
        eval_split: str | None = None,
        streaming: bool = False,
) -> ImageData:
    """Resolve and load an image-classification dataset (see the module docstring for the accepted names).

    Args:
        name: ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, a Hub repo id or a local path.
        data_dir: A local copy of a named dataset (overrides the Hub).
        image_column: Image column (default: the dataset's known column, else its first ``Image`` feature).
        label_column: Label column (default: known column, else its first ``ClassLabel`` feature or ``label``).
        train_split: Training split name (default ``train``).
        eval_split: Evaluation split (default ``test``, ``validation`` or ``val``; none when absent).
        streaming: Stream the splits (``IterableDataset``) instead of downloading them first.

    Raises:
        DatasetLoadError: (a ValueError) with a message that says what to do.
    """
    import datasets

    if not isinstance(name, str) or not name:
        raise DatasetLoadError(f"dataset must be a name, repo id or path, got {name!r}")
    known = KNOWN_DATASETS.get(name.lower())
    names: list[str] | None = None
    extra: dict[str, Any] = {}
    if known is not None and known.repo == "sklearn:digits":
        if streaming:
            raise DatasetLoadError("the embedded digits dataset is in memory; drop --streaming")
        train, test, names = _digits()
        splits = {"train": train, "test": test}
        source, provenance, input_size = known.repo, ("scikit-learn's digits (1,797 8x8 scans of handwritten digits, "
                                                      "UCI), upsampled to 32x32 RGB; fixed stratified 80/20 split"), 32
    elif known is not None:
        repo = known.streaming_repo if (streaming and known.streaming_repo) else known.repo
        if streaming and known.streaming_repo:
            image_column = image_column or known.streaming_image
            label_column = label_column or known.streaming_label
        if data_dir is not None:
            splits, names = _load_local(Path(data_dir), streaming)
            source = f"{name.lower()} from {Path(data_dir).name}"
            extra["path"] = Path(data_dir).name
            provenance = _local_provenance(Path(data_dir), default=f"{repo} (local copy {Path(data_dir).name})")
        else:
            splits = _load_hub(repo, streaming)
            source, provenance = repo, f"{repo} from the Hugging Face Hub"
            extra["repo"] = repo
        input_size = known.input_size
        if image_column is None and known.image in _first(splits).features:
            image_column = known.image
        if label_column is None and known.label in _first(splits).features:
            label_column = known.label
    else:
        path = Path(data_dir if data_dir is not None else name).expanduser()
        if data_dir is not None or path.exists():
            splits, names = _load_local(path, streaming)
            source, provenance = str(path.name), _local_provenance(path, default=f"local dataset {path.name}")
            extra["path"] = path.name
        elif _looks_like_repo(name):
            splits = _load_hub(name, streaming)
            source, provenance = name, f"{name} from the Hugging Face Hub"
            extra["repo"] = name
        elif os.sep in name or name.startswith((".", "~")):
            raise DatasetLoadError(f"no dataset at {name}: the path does not exist")
        else:
            raise DatasetLoadError(f"unknown dataset {name!r}: use one of {', '.join(KNOWN_DATASETS)}, a Hub repo id "
                                   f"(org/name) or a local path")
        input_size = 0  # unknown: taken from the model

    train_name = cast(str, _pick_split(splits, train_split, ("train",), source, required=True))  # raises, not None
    eval_name = _pick_split(splits, eval_split, ("test", "validation", "val", "valid"), source, required=False)
    features = splits[train_name].features
    if features is None:  # some streaming sources only know their features after a first row
        features = datasets.Features({k: _infer_feature(v) for k, v in next(iter(splits[train_name])).items()})
    image_column = _pick_column(features, image_column, "image", ("image", "img", "jpg", "png"), source)
    label_column = _pick_column(features, label_column, "label", ("label", "labels", "cls", "fine_label", "target"),
                                source)

    label_feature = features[label_column]
    if names is None and isinstance(label_feature, datasets.ClassLabel):
        names = list(label_feature.names)
    if names is None:
        names = _label_names_from_values(splits[train_name], label_column, streaming)

    prepared = {}
    for split in [s for s in dict.fromkeys((train_name, eval_name)) if s is not None]:
        ds = splits[split]
        if isinstance(features.get(image_column), datasets.Image):
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        prepared[split] = ds
    extra.update(splits=sorted(splits), train_split=train_name, eval_split=eval_name)
    eval_ds = prepared[eval_name] if eval_name is not None else None
    return ImageData(train=prepared[train_name], eval=eval_ds, image_column=image_column,
                     label_column=label_column, label_names=names, source=source, provenance=provenance,
                     input_size=input_size, streaming=streaming, extra=extra)


def _local_provenance(path: Path, default: str) -> str:
    """The title of a local dataset's README (e.g. how a copy was made), or ``default``."""
    folder = path if path.is_dir() else path.parent
    readme = folder / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines()[:20]:
            if line.startswith("# "):
                return f"{line[2:].strip()} (local copy {path.name})"
    return default


def _first(splits: dict[str, Any]) -> Any:
    return next(iter(splits.values()))


def _looks_like_repo(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _infer_feature(value: Any) -> Any:
    import datasets

    if isinstance(value, (dict, bytes, Image.Image)):
        return datasets.Image(decode=False)
    return datasets.Value("int64") if isinstance(value, (int, np.integer)) else datasets.Value("string")


def _label_names_from_values(ds: Any, column: str, streaming: bool) -> list[str]:
    if streaming:
        raise DatasetLoadError(f"label column {column!r} has no class names; streaming needs a ClassLabel feature "
                               f"(or a known dataset) to know the number of classes")
    values = np.asarray(ds[column])
    if values.dtype.kind not in "iu" or values.min() < 0:
        raise DatasetLoadError(f"label column {column!r} must hold class indices 0..C-1, got {values.dtype} values")
    return [str(i) for i in range(int(values.max()) + 1)]
