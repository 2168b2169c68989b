"""Benchmark readers on tiny folders made in the official layouts, and their error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from timm_dynmix.data.sampler import subset_indices
from timm_dynmix.robustness.readers import (
    BenchmarkError,
    detect_layout,
    read_folder_c,
    read_npy_c,
    read_perturbations,
    resolve_classes,
)


def make_npy_c(root: Path, k: int = 6, corruptions=("fog", "speckle_noise"), size: int = 8, clean: bool = False,
               num_classes: int = 3) -> np.ndarray:
    """A CIFAR-10-C-style folder: k images per severity; pixel [0, 0, 0] = severity, [0, 0, 1] = image index."""
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(k) % num_classes
    for c in corruptions:
        arr = np.zeros((5 * k, size, size, 3), np.uint8)
        for s in range(1, 6):
            arr[(s - 1) * k:s * k, 0, 0, 0] = s
            arr[(s - 1) * k:s * k, 0, 0, 1] = np.arange(k)
        np.save(root / f"{c}.npy", arr)
    np.save(root / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    if clean:
        arr = np.zeros((k, size, size, 3), np.uint8)
        arr[:, 0, 0, 1] = np.arange(k)
        np.save(root / "clean.npy", arr)
    return labels


def make_folder_c(root: Path, classes=("n01440764", "n01443537"), per_class: int = 2, group: str | None = None,
                  corruptions=("fog", "snow"), severities=(1, 2, 3, 4, 5), clean: bool = False) -> None:
    for c in corruptions:
        base = root / group / c if group else root / c
        for s in severities:
            for cls in classes:
                d = base / str(s) / cls
                d.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    Image.new("RGB", (8, 8), (s * 40, i * 50, 0)).save(d / f"img{i}.JPEG")
    if clean:
        for cls in classes:
            d = root / "clean" / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8), (0, i * 50, 0)).save(d / f"img{i}.JPEG")


def test_npy_layout(tmp_path):
    labels = make_npy_c(tmp_path, clean=True)
    bench = read_npy_c(tmp_path)
    assert detect_layout(tmp_path) == "npy"
    assert bench.corruptions == ["fog", "speckle_noise"]  # benchmark order: the 15, then the extra ones
    assert bench.clean is not None and len(bench.cells) == 1 + 2 * 5
    cell = next(c for c in bench.cells if c.corruption == "fog" and c.severity == 4)
    assert [cell.source.image(i)[0, 0, 0] for i in range(6)] == [4] * 6
    assert [cell.source.image(i)[0, 0, 1] for i in range(6)] == list(range(6))
    assert [cell.source.label(i) for i in range(6)] == labels.tolist()
    # a subset: the same positions in every cell, clean included
    sub = read_npy_c(tmp_path, corruptions=["fog"], severities=[2, 5], max_per_cell=3, seed=1)
    pos = subset_indices(6, 3, seed=1)
    assert [(c.corruption, c.severity) for c in sub.cells] == [("clean", 0), ("fog", 2), ("fog", 5)]
    for c in sub.cells:
        assert [c.source.image(i)[0, 0, 1] for i in range(3)] == pos.tolist()


@pytest.mark.parametrize("breakage, match", [
    ("no_labels", "has no labels.npy"),
    ("labels_2d", "labels.npy must be a 1-D integer array"),
    ("labels_not_5", "expected 5 severity blocks"),
    ("float_images", r"fog.npy must be a uint8 array \(N, H, W, 3\)"),
    ("gray_images", r"fog.npy must be a uint8 array \(N, H, W, 3\)"),
    ("count_mismatch", "label count mismatch: fog.npy has 35 images but labels.npy has 30 labels"),
    ("clean_count", "clean.npy has 4 images but each severity block"),
    ("not_npy", "cannot read .*fog.npy as a .npy array"),
])
def test_npy_layout_errors(tmp_path, breakage, match):
    make_npy_c(tmp_path, clean=True)
    if breakage == "no_labels":
        (tmp_path / "labels.npy").unlink()
    elif breakage == "labels_2d":
        np.save(tmp_path / "labels.npy", np.zeros((30, 2), np.uint8))
    elif breakage == "labels_not_5":
        np.save(tmp_path / "labels.npy", np.zeros(31, np.uint8))
    elif breakage == "float_images":
        np.save(tmp_path / "fog.npy", np.zeros((30, 8, 8, 3), np.float32))
    elif breakage == "gray_images":
        np.save(tmp_path / "fog.npy", np.zeros((30, 8, 8), np.uint8))
    elif breakage == "count_mismatch":
        np.save(tmp_path / "fog.npy", np.zeros((35, 8, 8, 3), np.uint8))
    elif breakage == "clean_count":
        np.save(tmp_path / "clean.npy", np.zeros((4, 8, 8, 3), np.uint8))
    elif breakage == "not_npy":
        (tmp_path / "fog.npy").write_bytes(b"not an array")
    with pytest.raises(BenchmarkError, match=match):
        read_npy_c(tmp_path)


def test_npy_selection_errors(tmp_path):
    make_npy_c(tmp_path)
    with pytest.raises(BenchmarkError, match=r"corruption frost not found in .*; it has: fog, speckle_noise"):
        read_npy_c(tmp_path, corruptions=["frost"])
    with pytest.raises(ValueError, match=r"severities must be integers in 1..5, got 7"):
        read_npy_c(tmp_path, severities=[7])
    with pytest.raises(BenchmarkError, match=r"no benchmark folder at"):
        read_npy_c(tmp_path / "nope")
    (tmp_path / "fog.npy").unlink()
    (tmp_path / "speckle_noise.npy").unlink()
    with pytest.raises(BenchmarkError, match=r"has labels.npy but no <corruption>.npy file"):
        read_npy_c(tmp_path)


@pytest.mark.parametrize("group", [None, "weather"])
def test_folder_layout(tmp_path, group):
    make_folder_c(tmp_path, group=group, clean=True)
    assert detect_layout(tmp_path) == "folder"
    bench = read_folder_c(tmp_path, num_classes=1000)
    assert bench.corruptions == ["snow", "fog"] and len(bench.cells) == 1 + 10
    # 1000-class model and wnid folders: ImageNet-1k indices (tench = 0, goldfish = 1)
    assert bench.class_to_index == {"n01440764": 0, "n01443537": 1}
    cell = next(c for c in bench.cells if c.corruption == "fog" and c.severity == 3)
    assert len(cell) == 4 and cell.source.image(0)[0, 0, 0] == pytest.approx(120, abs=3)
    assert [cell.source.label(i) for i in range(4)] == [0, 0, 1, 1]
    sub = read_folder_c(tmp_path, corruptions=["fog"], severities=[1], max_per_cell=2)
    assert [len(c) for c in sub.cells] == [2, 2]


def test_folder_layout_reads_every_image_extension(tmp_path):
    # the folder readers of datasets and benchmarks accept the same files (the benchmark reader skipped .pgm/.gif)
    make_folder_c(tmp_path, corruptions=("fog",), severities=(1,))
    Image.new("L", (8, 8), 7).save(tmp_path / "fog" / "1" / "n01440764" / "extra.pgm")
    bench = read_folder_c(tmp_path, corruptions=["fog"], severities=[1])
    assert [len(c) for c in bench.cells] == [5]


def test_class_mapping():
    assert resolve_classes(["cat", "dog"], model_labels=["dog", "eel", "cat"]) == {"cat": 2, "dog": 0}
    assert resolve_classes(["b", "a"]) == {"a": 0, "b": 1}
    with pytest.raises(BenchmarkError, match=r"label count mismatch: the benchmark has 3 classes but the model has 2"):
        resolve_classes(["a", "b", "c"], num_classes=2)
    with pytest.raises(BenchmarkError, match=r"not ImageNet-1k wnids"):
        resolve_classes(["n99999999"], num_classes=1000)


def test_folder_layout_errors(tmp_path):
    with pytest.raises(BenchmarkError, match=r"no <corruption>/<severity>/<class>/<image> folders"):
        (tmp_path / "empty").mkdir()
        read_folder_c(tmp_path / "empty")
    make_folder_c(tmp_path / "a", severities=(1, 2, 3, 4))
    with pytest.raises(BenchmarkError, match=r"missing severity folder .*snow/5"):
        read_folder_c(tmp_path / "a")
    make_folder_c(tmp_path / "b")
    extra = tmp_path / "b" / "snow" / "2" / "n99999999"
    extra.mkdir()
    Image.new("RGB", (8, 8)).save(extra / "x.JPEG")
    with pytest.raises(BenchmarkError, match=r"snow/2 has different class folders than fog/1 \(extra: \['n99999999'"):
        read_folder_c(tmp_path / "b", corruptions=["fog", "snow"])
    make_folder_c(tmp_path / "c")
    for f in (tmp_path / "c" / "fog" / "3").rglob("*.JPEG"):
        f.unlink()
    with pytest.raises(BenchmarkError, match=r"no <class>/<image> files in .*fog/3"):
        read_folder_c(tmp_path / "c")
    with pytest.raises(BenchmarkError, match=r"cannot tell the layout"):
        detect_layout(tmp_path / "empty")


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1, (w, h))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4 files")
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()


@pytest.mark.usefixtures("eval_extra")
def test_imagenet_p_layout(tmp_path):
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    frames[:, :, :16] = [200, 30, 30]
    _write_mp4(tmp_path / "rotate" / "n01443537" / "ILSVRC2012_val_00000001.mp4", frames)
    (tmp_path / "rotate" / "n01440764").mkdir()
    np.save(tmp_path / "rotate" / "n01440764" / "v2.npy", frames)
    for d in (1, 2):
        folder = tmp_path / ("gaussian_noise" if d == 1 else "gaussian_noise_2") / "n01440764"
        folder.mkdir(parents=True)
        np.save(folder / "v.npy", np.full((4, 32, 32, 3), 10 * d, np.uint8))
    assert detect_layout(tmp_path) == "p-folder"
    bench = read_perturbations(tmp_path, num_classes=1000)
    assert [s.name for s in bench.sets] == ["gaussian_noise", "rotate"]
    noise, rotate = bench.sets
    assert noise.noise and not rotate.noise
    assert sorted(v.label for v in rotate.videos) == [0, 1]
    decoded = next(v for v in rotate.videos if v.path.suffix == ".mp4").frames()
    assert decoded.shape == (5, 32, 32, 3) and decoded[0, 5, 5, 0] > 150 and decoded[0, 5, 5, 2] < 80  # RGB
    hard = read_perturbations(tmp_path, ["gaussian_noise"], difficulty=2, num_classes=1000)
    assert hard.sets[0].videos[0].frames()[0, 0, 0, 0] == 20  # the _2 folder
    with pytest.raises(BenchmarkError, match=r"missing .*gaussian_noise_3"):
        read_perturbations(tmp_path, ["gaussian_noise"], difficulty=3)
    with pytest.raises(ValueError, match=r"difficulty must be 1, 2 or 3"):
        read_perturbations(tmp_path, difficulty=4)
    bad = tmp_path / "rotate" / "n01440764" / "bad.npy"
    np.save(bad, np.zeros((3, 8, 8), np.uint8))
    video = next(v for v in read_perturbations(tmp_path, ["rotate"]).sets[0].videos if v.path == bad)
    with pytest.raises(BenchmarkError, match=r"must hold uint8 frames \(T, H, W, 3\)"):
        video.frames()


def test_cifar_p_layout(tmp_path):
    np.save(tmp_path / "brightness.npy", np.zeros((4, 3, 8, 8, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.arange(4))
    assert detect_layout(tmp_path) == "p-npy"
    bench = read_perturbations(tmp_path)
    assert bench.has_labels and [v.label for v in bench.sets[0].videos] == [0, 1, 2, 3]
    assert bench.sets[0].videos[2].frames().shape == (3, 8, 8, 3)
    np.save(tmp_path / "labels.npy", np.arange(5))
    with pytest.raises(BenchmarkError, match=r"label count mismatch: brightness.npy has 4 videos but labels.npy has 5"):
        read_perturbations(tmp_path)
    np.save(tmp_path / "labels.npy", np.arange(4))
    np.save(tmp_path / "brightness.npy", np.zeros((4, 3, 8, 8, 3), np.float32))
    with pytest.raises(BenchmarkError, match=r"brightness.npy must be a uint8 array \(N, T, H, W, 3\)"):
        read_perturbations(tmp_path)
