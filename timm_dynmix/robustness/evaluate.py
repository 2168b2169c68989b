"""``timm-dynmix eval``: robustness evaluation of a classifier on clean, -C, -3DCC and -P benchmarks.

The model runs under Accelerate: each process evaluates its shard of the batches, predictions are collected with
``gather_for_metrics`` (which drops the samples Accelerate repeats to even out the last batches) and put back in
place by their sample index, so any number of processes gives the results of one. Every metric is then computed
once, from the predictions, by :mod:`timm_dynmix.robustness.metrics`.

Test-time preprocessing follows the benchmarks' protocol: uint8 RGB -> [0, 1] -> ``(x - mean) / std`` with the
model's own ``pretrained_cfg`` mean and std; no resize or crop (CIFAR images stay 32 x 32; ImageNet-C / -P images
are already 224 x 224), unless ``resize_256_crop_224`` (AugMix's ImageNet test transform: Resize(256) bilinear
with antialiasing, then CenterCrop(224)).

Benchmarks (``--benchmark``): ``cifar10`` / ``cifar100`` (clean test set only), ``cifar10-c`` / ``cifar100-c``
(``--data-dir`` = the CIFAR-10-C folder; ``--clean`` = the clean test set, e.g. ``cifar10`` with
``--clean-data-dir``, for the clean error), ``imagenet-c``, ``imagenet-3dcc`` (``--data-dir`` = the folder tree;
``--clean`` = an image folder of the clean validation images, optional), ``imagenet-p`` / ``cifar10-p`` /
``cifar100-p``, or the path of a folder made by ``timm-dynmix make-c`` (any of these layouts, detected).
See :mod:`timm_dynmix.robustness.readers` for the layouts and :mod:`timm_dynmix.robustness.report` for the report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from timm_dynmix.data.sampler import subset_indices
from timm_dynmix.robustness.readers import (
    BENCHMARKS,
    BenchmarkError,
    Cell,
    CorruptionBenchmark,
    DatasetSource,
    PerturbationBenchmark,
    detect_layout,
    read_folder_c,
    read_npy_c,
    read_perturbations,
)
from timm_dynmix.robustness.results import CellPredictions, CorruptionResult, PerturbationResult
from timm_dynmix.runtime import Uint8Normalize, gathered_outputs, has_accelerator

__all__ = [
    "CellPredictions", "CorruptionResult", "PerturbationResult", "evaluate_corruptions", "evaluate_perturbations",
    "load_eval_model", "load_benchmark", "BENCHMARKS",
]

logger = logging.getLogger(__name__)



# ---- model -------------------------------------------------------------------------------------------------------
def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from timm_dynmix.models.load import check_weights_file

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    check_weights_file(path)  # truncated or corrupt files: one clear error naming the file
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_eval_model(name: str, checkpoint: str | os.PathLike[str] | None = None) -> torch.nn.Module:
    """A classifier in eval mode: ``timm_dynmix.create_model(name, pretrained=True)``, or with ``checkpoint`` (a raw
    state dict, ``.pth``/``.pt``/``.safetensors``) the architecture ``name`` with those weights (the classifier is
    resized to the checkpoint's number of classes)."""
    from timm_dynmix.models.load import create_model

    if checkpoint is None:
        model = create_model(name, pretrained=True)
    else:
        state = _read_state_dict(Path(checkpoint))
        model = create_model(name, pretrained=False)
        head = model.pretrained_cfg.get("classifier")
        heads = [head] if isinstance(head, str) else list(head or [])
        for h in heads:
            weight = state.get(f"{h}.weight")
            if weight is not None and weight.shape[0] != model.num_classes:
                model.reset_classifier(int(weight.shape[0]))
                break
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"checkpoint {checkpoint} does not fit architecture {name!r}: {str(e)[:600]}") from None
    return model.eval()


def _normalization(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)), tuple(cfg.get("std", IMAGENET_DEFAULT_STD))


def _accelerator(device: str | None) -> Any:
    from accelerate import Accelerator

    if device not in (None, "auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here; use --device cpu")
    return Accelerator(cpu=device == "cpu" or not has_accelerator())


# ---- datasets ----------------------------------------------------------------------------------------------------
class _CellImages(torch.utils.data.Dataset[tuple[torch.Tensor, int, int]]):
    """All images of a list of cells, indexed globally: ``(uint8 (3, H, W), label, global index)``."""

    def __init__(self, cells: Sequence[Cell], resize_crop: bool):
        self.cells = list(cells)
        self.offsets = np.cumsum([0] + [len(c) for c in self.cells])
        self.resize_crop = resize_crop

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        src = self.cells[k].source
        j = index - int(self.offsets[k])
        img = torch.from_numpy(np.ascontiguousarray(src.image(j))).permute(2, 0, 1)
        if self.resize_crop or self.cells[k].resize_crop:
            img = _resize_crop(img)
        return img, src.label(j), index


def _resize_crop(img: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    return F.center_crop(F.resize(img, 256, antialias=True), [224, 224])


class _Videos(torch.utils.data.Dataset[Any]):
    def __init__(self, videos: Sequence[Any], resize_crop: bool):
        self.videos, self.resize_crop = list(videos), resize_crop

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        frames = torch.from_numpy(np.ascontiguousarray(self.videos[index].frames())).permute(0, 3, 1, 2)
        if self.resize_crop:
            frames = _resize_crop(frames)
        return frames, self.videos[index].label, index


def _collate_check(batch: list[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = {tuple(b[0].shape) for b in batch}
    if len(shapes) > 1:
        raise ValueError(f"items of different shapes in one batch ({sorted(shapes)[:3]}): the images of a benchmark "
                         f"must share one size (--resize-256-crop-224 resizes ImageNet-style images), and the videos "
                         f"of one perturbation one number of frames")
    return (torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch]),
            torch.tensor([b[2] for b in batch]))


def _run(model: torch.nn.Module, dataset: torch.utils.data.Dataset[Any], *, accelerator: Any, batch_size: int,
         num_workers: int, progress: bool, desc: str, video: bool = False) -> dict[str, np.ndarray]:
    """Predictions for every item of ``dataset``, in dataset order, on every process."""
    from tqdm.auto import tqdm

    mean, std = _normalization(model)
    normalize = Uint8Normalize(mean, std).to(accelerator.device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=_collate_check)
    loader = accelerator.prepare(loader)

    def predict(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y, idx = batch
        shape = x.shape
        if video:  # (B, T, 3, H, W) -> (B*T, 3, H, W)
            x = x.flatten(0, 1)
        logits = model(normalize(x)).float()
        prob = logits.softmax(-1)
        conf, pred = prob.max(-1)
        top5 = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        if video:
            pred, conf, top5 = pred.view(shape[0], shape[1]), conf.view(shape[0], shape[1]), \
                top5.view(shape[0], shape[1], -1)
        return {"pred": pred, "conf": conf, "top5": top5, "label": y, "idx": idx}

    n = len(dataset)  # type: ignore[arg-type]  # our datasets have a length
    out: dict[str, np.ndarray] = {}
    bar = tqdm(total=n, desc=desc, unit="video" if video else "img",
               disable=not (progress and accelerator.is_local_main_process))
    for gathered in gathered_outputs(model, _unwrapped_errors(loader), accelerator, predict):
        g_idx = gathered["idx"].cpu().numpy()
        for key in ("pred", "conf", "top5", "label"):
            val = gathered[key].cpu().numpy()
            if key not in out:
                out[key] = np.zeros((n, *val.shape[1:]), dtype=val.dtype)
            out[key][g_idx] = val
        bar.update(len(g_idx))
    bar.close()
    if not out:
        raise ValueError("nothing to evaluate: the benchmark selection is empty")
    return out


def _unwrapped_errors(loader: Any) -> Any:
    """Iterate ``loader``; an error raised in a DataLoader worker loses the worker's traceback from its message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            text = str(e)
            if "Original Traceback" not in text:
                raise
            last = text.strip().splitlines()[-1]
            kind, _, message = last.partition(": ")
            ours = message and kind.rsplit(".", 1)[-1] in ("ValueError", "BenchmarkError", "DatasetLoadError")
            raise ValueError(message if ours else last) from None
        yield batch


def evaluate_corruptions(model: torch.nn.Module, benchmark: CorruptionBenchmark, *, batch_size: int = 256,
                         device: str | None = None, resize_256_crop_224: bool = False, num_workers: int | None = None,
                         progress: bool = True, accelerator: Any = None) -> CorruptionResult:
    """Run ``model`` on every cell of a -C benchmark (or a clean set); predictions on every process."""
    _check_batch(batch_size)
    accelerator = accelerator or _accelerator(device)
    model = model.eval().to(accelerator.device)
    _check_classes(model, benchmark.cells)
    workers = _workers(num_workers, benchmark.layout == "folder")
    start = time.perf_counter()
    # the clean set and the corrupted cells run as separate passes: their images may differ in size (a clean
    # validation set resized on the fly), and batches never mix the two
    groups = [[c for c in benchmark.cells if c.is_clean], [c for c in benchmark.cells if not c.is_clean]]
    predictions: dict[int, CellPredictions] = {}
    total = 0
    for group in (g for g in groups if g):
        dataset = _CellImages(group, resize_256_crop_224)
        total += len(dataset)
        raw = _run(model, dataset, accelerator=accelerator, batch_size=batch_size, num_workers=workers,
                   progress=progress, desc="clean" if group[0].is_clean else benchmark.name)
        for k, cell in enumerate(group):
            sl = slice(int(dataset.offsets[k]), int(dataset.offsets[k + 1]))
            predictions[id(cell)] = CellPredictions(cell.corruption, cell.severity, raw["pred"][sl].astype(np.int64),
                                                    raw["conf"][sl].astype(np.float64),
                                                    raw["label"][sl].astype(np.int64))
    cells = [predictions[id(c)] for c in benchmark.cells]
    info = {"world_size": accelerator.num_processes, "device": accelerator.device.type,
            "batch_size": batch_size, "elapsed_s": time.perf_counter() - start, "num_images": total,
            "is_main_process": accelerator.is_main_process}
    return CorruptionResult(benchmark, cells, info)


def evaluate_perturbations(model: torch.nn.Module, benchmark: PerturbationBenchmark, *, batch_size: int = 256,
                           device: str | None = None, resize_256_crop_224: bool = False,
                           num_workers: int | None = None, progress: bool = True,
                           accelerator: Any = None) -> PerturbationResult:
    """Top-1 and top-5 predictions on every frame of every video of a -P benchmark."""
    _check_batch(batch_size)
    accelerator = accelerator or _accelerator(device)
    model = model.eval().to(accelerator.device)
    start = time.perf_counter()
    preds = {}
    for pset in benchmark.sets:
        frames = pset.videos[0].frames().shape[0]
        videos_per_batch = max(1, batch_size // frames)
        raw = _run(model, _Videos(pset.videos, resize_256_crop_224), accelerator=accelerator,
                   batch_size=videos_per_batch, num_workers=_workers(num_workers, pset.videos[0].path is not None),
                   progress=progress, desc=pset.name, video=True)
        preds[pset.name] = (raw["pred"].astype(np.int64), raw["top5"].astype(np.int64),
                            raw["label"].astype(np.int64))
    info = {"world_size": accelerator.num_processes, "device": accelerator.device.type, "batch_size": batch_size,
            "elapsed_s": time.perf_counter() - start, "is_main_process": accelerator.is_main_process}
    return PerturbationResult(benchmark, preds, info)


def _check_batch(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _workers(num_workers: int | None, files: bool) -> int:
    if num_workers is not None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        return num_workers
    return min(4, max(1, (os.cpu_count() or 2) - 1)) if files else 0


def _check_classes(model: torch.nn.Module, cells: Sequence[Cell]) -> None:
    num = getattr(model, "num_classes", None)
    if not isinstance(num, int) or num <= 0:
        return
    for cell in cells:
        src = cell.source
        labels = getattr(src, "labels", None)
        if isinstance(labels, np.ndarray) and hasattr(src, "rows") and labels.ndim == 1 and len(labels):
            top = int(np.max(labels[src.rows])) if len(src.rows) else -1
        elif isinstance(labels, np.ndarray) and len(labels):
            top = int(labels.max())
        else:
            continue
        if top >= num:
            raise ValueError(f"label count mismatch: the {cell.corruption} cell has label {top} but the model has "
                             f"{num} classes (0..{num - 1})")


# ---- benchmark resolution ----------------------------------------------------------------------------------------
def _clean_cell(clean: str, data_dir: str | None, max_per_cell: int | None, seed: int,
                class_to_index: dict[str, int] | None = None) -> tuple[Cell, Any]:
    """The clean set as a cell; with ``class_to_index`` (a folder benchmark's classes) labels are mapped by name."""
    from timm_dynmix.data.datasets import DecodedImageDataset
    from timm_dynmix.robustness.make_c import load_split

    split, data, _ = load_split(clean, data_dir)
    decoded = DecodedImageDataset(split, data.image_column, data.label_column)
    rows = subset_indices(len(decoded), max_per_cell, seed)
    label_map = None
    if class_to_index:
        unknown = [n for n in data.label_names if n not in class_to_index]
        if unknown:
            raise BenchmarkError(f"the clean set {clean} has classes the benchmark does not have: {unknown[:5]}")
        label_map = np.array([class_to_index[n] for n in data.label_names], dtype=np.int64)
    return Cell("clean", 0, DatasetSource(decoded, rows, label_map)), data


def load_benchmark(benchmark: str, *, data_dir: str | None = None, clean: str | None = None,
                   clean_data_dir: str | None = None, corruptions: Sequence[str] | None = None,
                   severities: Sequence[int] | None = None, max_per_cell: int | None = None, seed: int = 0,
                   difficulty: int = 1, model: torch.nn.Module | None = None
                   ) -> CorruptionBenchmark | PerturbationBenchmark:
    """Resolve ``--benchmark`` (a name of :data:`BENCHMARKS` or a folder) to a benchmark object."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    labels, num_classes = cfg.get("label_names"), getattr(model, "num_classes", None)
    name = benchmark.lower()
    if name in ("cifar10", "cifar100"):
        cell, data = _clean_cell(name, data_dir, max_per_cell, seed)
        return CorruptionBenchmark(name=name, root=Path(data_dir) if data_dir else None, cells=[cell],
                                   class_names=list(data.label_names), layout="dataset",
                                   info={"provenance": data.provenance})
    if name in BENCHMARKS or not Path(benchmark).exists():
        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {benchmark!r}: use one of {', '.join(BENCHMARKS)} or the path of a "
                             f"benchmark folder")
        if data_dir is None:
            raise ValueError(f"--benchmark {name} needs --data-dir (the folder holding the benchmark files)")
        root = Path(data_dir)
    else:
        root, name = Path(benchmark), None  # type: ignore[assignment]  # a folder: no registered name
    layout = detect_layout(root)
    if layout.startswith("p-"):
        return read_perturbations(root, corruptions, difficulty=difficulty, max_videos=max_per_cell, seed=seed,
                                  name=name or "perturbations", model_labels=labels, num_classes=num_classes)
    if name in ("imagenet-p", "cifar10-p", "cifar100-p"):
        raise BenchmarkError(f"{root} is a -C benchmark ({layout} layout), not {name}")
    if layout == "npy":
        bench = read_npy_c(root, corruptions, severities, max_per_cell, seed, name=name or "make-c")
    else:
        bench = read_folder_c(root, corruptions, severities, max_per_cell, seed, name=name or "make-c",
                              model_labels=labels, num_classes=num_classes)
    if clean is not None:
        if bench.clean is not None:
            raise ValueError(f"{root} already holds its clean images; drop --clean")
        cell, _ = _clean_cell(clean, clean_data_dir, max_per_cell, seed, bench.class_to_index)
        if bench.layout == "folder":  # validation images of any size: the crop the -C images were made from
            cell.resize_crop = True
            bench.info["clean_preprocessing"] = "Resize(256) + CenterCrop(224) of the clean images (--clean)"
        bench.cells.insert(0, cell)
    return bench
