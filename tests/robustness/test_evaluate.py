"""Evaluation with known answers, make-c, reports, the CLI, several processes, and the full path on real CIFAR-10."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CIFAR10_DIR
from torch import nn

from timm_dynmix.cli import main
from timm_dynmix.hub.card import load_eval_report
from timm_dynmix.robustness.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, corrupt
from timm_dynmix.robustness.evaluate import evaluate_corruptions, evaluate_perturbations, load_eval_model
from timm_dynmix.robustness.make_c import make_c
from timm_dynmix.robustness.readers import read_npy_c, read_perturbations
from timm_dynmix.robustness.report import build_report, compare_reports, write_report

ROOT = Path(__file__).resolve().parents[2]
CIDS = {"clean": 0, "fog": 1, "snow": 2, "speckle_noise": 3}


def make_coded_c(root: Path, k: int = 20, num_classes: int = 10) -> np.ndarray:
    """A CIFAR-10-C-style folder whose pixels [0, 0] encode (corruption id, severity, index); balanced labels."""
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(k) % num_classes
    for name, cid in CIDS.items():
        n_sev = 1 if name == "clean" else 5
        arr = np.zeros((n_sev * k, 32, 32, 3), np.uint8)
        for s in range(n_sev):
            arr[s * k:(s + 1) * k, 0, 0] = np.stack([np.full(k, cid), np.full(k, s + (name != "clean")),
                                                     np.arange(k)], axis=1)
        np.save(root / f"{name}.npy", arr)
    np.save(root / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    return labels


class Constant(nn.Module):
    """Predicts class 0 for everything; ``confident`` puts probability ~1 on it, else uniform logits."""

    def __init__(self, confident: bool = False, num_classes: int = 10):
        super().__init__()
        self.num_classes, self.confident = num_classes, confident
        self.pretrained_cfg = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.num_classes) + self.dummy
        if self.confident:
            out[:, 0] = 20.0
        return out


class Lookup(nn.Module):
    """Reads (corruption id, severity, index) from pixel (0, 0) and predicts ``table[cid, severity, index]``."""

    def __init__(self, table: np.ndarray, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.pretrained_cfg = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        self.register_buffer("table", torch.as_tensor(table))

    def forward(self, x):
        code = (x[:, :, 0, 0] * 255).round().long()
        pred = self.table[code[:, 0], code[:, 1], code[:, 2]]
        return nn.functional.one_hot(pred, self.num_classes).float() * 4.0


def test_constant_model_has_90_percent_error_everywhere(tmp_path):
    make_coded_c(tmp_path / "c")
    bench = read_npy_c(tmp_path / "c")
    for confident in (False, True):
        report = build_report(evaluate_corruptions(Constant(confident), bench, batch_size=7, progress=False),
                              Constant(), meta={"model": "constant"})
        assert report["clean_error"] == 90.0 and report["corruption_error"] == 90.0
        assert {c["error"] for c in report["cells"]} == {90.0} and len(report["cells"]) == 15
        assert report["per_corruption"] == {"snow": 90.0, "fog": 90.0}  # the benchmark ones, in benchmark order
        assert list(report["extra_corruptions"]) == ["speckle_noise"]  # reported, not averaged
        if confident:  # probability ~1 on a class right 10 % of the time
            assert report["rms_calibration_error"] == pytest.approx(90.0, abs=1e-3)
            assert report["clean"]["ece"] == pytest.approx(90.0, abs=1e-3)
        else:  # uniform probabilities: confidence 0.1, accuracy 0.1: calibrated
            assert report["rms_calibration_error"] == pytest.approx(0.0, abs=1e-4)
            assert report["clean"]["ece"] == pytest.approx(0.0, abs=1e-4)


def test_model_correct_on_a_chosen_subset(tmp_path):
    k = 20
    labels = make_coded_c(tmp_path / "c", k=k)
    rng = np.random.default_rng(0)
    correct = rng.random((4, 6, k)) < rng.random((4, 6, 1))  # a different rate per cell
    table = np.where(correct, labels, (labels + 1) % 10)
    bench = read_npy_c(tmp_path / "c")
    report = build_report(evaluate_corruptions(Lookup(table), bench, batch_size=16, progress=False), None)
    expected = {(c, s): 100 * (1 - correct[CIDS[c], s].mean()) for c in ("fog", "snow", "speckle_noise")
                for s in range(1, 6)}
    assert {(c["corruption"], c["severity"]): c["error"] for c in report["cells"]} == pytest.approx(expected)
    assert report["clean_error"] == pytest.approx(100 * (1 - correct[0, 0].mean()))
    per = {c: np.mean([expected[c, s] for s in range(1, 6)]) for c in ("fog", "snow")}
    assert report["per_corruption"] == pytest.approx(per)
    assert report["corruption_error"] == pytest.approx((per["fog"] + per["snow"]) / 2)  # speckle never averaged
    assert report["summary"]["mean_error_by_severity"]["3"] == pytest.approx((expected["fog", 3] + expected["snow", 3])
                                                                             / 2)
    # --max-per-cell: the same seeded positions in every cell
    sub = read_npy_c(tmp_path / "c", max_per_cell=7, seed=5)
    from timm_dynmix.robustness.readers import subset_indices

    pos = subset_indices(k, 7, seed=5)
    rep = build_report(evaluate_corruptions(Lookup(table), sub, batch_size=16, progress=False), None)
    assert rep["clean_error"] == pytest.approx(100 * (1 - correct[0, 0, pos].mean()))
    assert rep["cells"][0]["n"] == 7


@pytest.mark.usefixtures("eval_extra")
def test_report_files_and_card(tmp_path):
    make_coded_c(tmp_path / "c")
    bench = read_npy_c(tmp_path / "c")
    report = build_report(evaluate_corruptions(Constant(True), bench, progress=False), Constant(),
                          meta={"model": "constant", "name": "cifar10-c"})
    folder = write_report(report, tmp_path / "r")
    for f in ("report.json", "report.md", "cells.csv", "plots/error_vs_severity.png", "plots/heatmap.png",
              "plots/reliability.png"):
        assert (folder / f).is_file(), f
    data = json.loads((folder / "report.json").read_text())
    for key in ("benchmark", "dataset", "clean_error", "corruption_error", "mce", "rms_calibration_error",
                "per_corruption", "plots"):
        assert key in data, key
    rep = load_eval_report(folder)
    assert rep.benchmark == "cifar10-c" and rep.dataset_name == "CIFAR-10-C" and rep.clean_error == 90.0
    assert rep.mce is None and len(rep.plots) == 3
    md = (folder / "report.md").read_text()
    assert "| 90.00 | 90.00 |" in md and "speckle_noise *" in md


@pytest.mark.usefixtures("eval_extra")
def test_perturbations(tmp_path):
    # CIFAR-P layout; frame f of video v shows (perturbation id, frame, v)
    k, frames = 6, 5
    for pid, name in enumerate(("gaussian_noise", "rotate"), start=1):
        arr = np.zeros((k, frames, 32, 32, 3), np.uint8)
        for v in range(k):
            for f in range(frames):
                arr[v, f, 0, 0] = (pid, f, v)
        np.save(tmp_path / f"{name}.npy", arr)
    np.save(tmp_path / "labels.npy", np.arange(k) % 10)
    table = np.zeros((3, frames, k), np.int64)
    table[:, :, :] = np.arange(k) % 10  # correct everywhere...
    table[2, 2, :3] = 9  # ...except rotate frame 2 of videos 0-2 (2 flips each among 4 consecutive pairs)
    table[1, 4, 0] = 8  # and noise frame 4 of video 0 (1 flip of 4 against frame 0)
    bench = read_perturbations(tmp_path)
    result = evaluate_perturbations(Lookup(table), bench, batch_size=12, progress=False)
    report = build_report(result, None, baseline={"flip_probability": {"gaussian_noise": 0.5, "rotate": 0.25}})
    assert report["flip_probability"] == pytest.approx({"gaussian_noise": 100 * (0.25 / k),
                                                        "rotate": 100 * (3 * 0.5 / k)}, abs=1e-3)
    assert report["clean_error"] == 0.0  # first frames of the noise sequences
    assert report["mfr"] == pytest.approx(100 * ((0.25 / k) / 0.5 + (1.5 / k) / 0.25) / 2, abs=1e-3)
    assert report["top5_distance"]["gaussian_noise"] > 0
    folder = write_report(report, tmp_path / "r")
    assert load_eval_report(folder).clean_error == 0.0 and (folder / "plots" / "flip_probability.png").is_file()


def _source_npz(folder: Path, images: np.ndarray, labels: np.ndarray, names=("cat", "dog", "eel")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "mini_test_uint8.npz", x_test=images, y_test=labels, class_names=np.array(names))
    return folder


@pytest.fixture
def source(tmp_path, real_images) -> tuple[Path, np.ndarray, np.ndarray]:
    images = np.stack([np.asarray(im) for im in real_images[:12]])
    labels = (np.arange(12) % 3).astype(np.uint8)
    return _source_npz(tmp_path / "src", images, labels), images, labels


def test_make_c_npy(tmp_path, source):
    src, images, labels = source
    some = ["fog", "glass_blur", "jpeg_compression"]
    man = make_c(str(src), tmp_path / "c", corruptions=some, max_per_cell=8, seed=2, batch_size=3, progress=False)
    rows = np.array(man["indices"])
    assert man["split"] == "test" and man["num_images"] == 8 and len(rows) == 8 and np.all(np.diff(rows) > 0)
    assert man["label_names"] == ["cat", "dog", "eel"] and set(man["corruptions"]) == set(some)
    out = tmp_path / "c"
    clean = np.load(out / "clean.npy")
    assert np.array_equal(clean, images[rows])
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(labels[rows], 5))
    fog = np.load(out / "fog.npy")
    assert fog.shape == (40, 32, 32, 3) and fog.dtype == np.uint8
    # severity-major, each image corrupted with the generator of its source index, whatever the batching
    assert np.array_equal(fog[3 * 8:4 * 8], corrupt(images[rows], "fog", 4, seed=2, indices=rows))
    # parallel workers and another batch size give the same arrays
    make_c(str(src), tmp_path / "c2", corruptions=["fog"], max_per_cell=8, seed=2, num_workers=2, progress=False)
    assert np.array_equal(np.load(tmp_path / "c2" / "fog.npy"), fog)
    # the folder is a CIFAR-10-C-style benchmark with its clean images
    bench = read_npy_c(out)
    assert bench.clean is not None and bench.class_names == ["cat", "dog", "eel"] and len(bench.cells) == 16


def test_make_c_records_the_split_of_an_npz_file(tmp_path, source):
    """A lone npz archive is one split: make_c.json names the one it holds (by file name, else by its x_<split>
    array), not the loader's "train"; that name is accepted as --split."""
    _, images, labels = source
    folder = tmp_path / "files"
    folder.mkdir()
    np.savez(folder / "mini_test_uint8.npz", x_test=images, y_test=labels)  # like the shared cifar10_test_uint8.npz
    np.savez(folder / "holdout.npz", x_test=images, y_test=labels)
    np.savez(folder / "pool.npz", x_train=images, y_train=labels)
    np.savez(folder / "plain.npz", x=images, y=labels)
    for name, expected in [("mini_test_uint8.npz", "test"), ("holdout.npz", "test"), ("pool.npz", "train"),
                           ("plain.npz", "train")]:
        out = tmp_path / name
        man = make_c(str(folder / name), out, corruptions=["contrast"], max_per_cell=4, progress=False)
        assert man["split"] == expected, name
        assert json.loads((out / "make_c.json").read_text())["split"] == expected
    man = make_c(str(folder / "holdout.npz"), tmp_path / "s", split="test", corruptions=["contrast"], max_per_cell=4,
                 progress=False)
    assert man["split"] == "test" and np.array_equal(np.load(tmp_path / "s" / "clean.npy"), images[man["indices"]])


def test_make_c_resume_and_settings(tmp_path, source):
    src = source[0]
    out = tmp_path / "c"
    make_c(str(src), out, corruptions=["fog", "contrast"], progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    (out / "fog.npy").unlink()  # as if the run had been killed before fog was complete
    again = make_c(str(src), out, corruptions=["fog", "contrast", "pixelate"], progress=False)
    assert again["skipped"] == ["contrast"] and set(again["corruptions"]) == {"fog", "contrast", "pixelate"}
    assert (out / "contrast.npy").stat().st_mtime_ns == before["contrast.npy"]
    assert not list(out.glob(".*tmp*"))  # no temporary file left behind
    with pytest.raises(ValueError, match=r"holds a benchmark made with other settings .*seed"):
        make_c(str(src), out, corruptions=["fog"], seed=1, progress=False)


@pytest.mark.usefixtures("eval_extra")
def test_make_c_folder_layout(tmp_path, source):
    src, _images, _ = source
    man = make_c(str(src), tmp_path / "c", corruptions=["snow"], layout="folder", progress=False)
    assert man["layout"] == "folder"
    files = sorted((tmp_path / "c" / "snow" / "3").rglob("*.JPEG"))
    assert len(files) == 12 and {f.parent.name for f in files} == {"cat", "dog", "eel"}
    assert len(list((tmp_path / "c" / "clean").rglob("*.JPEG"))) == 12
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["clean", "make_c.json", "snow"]  # no cache left
    from timm_dynmix.robustness.readers import read_folder_c

    bench = read_folder_c(tmp_path / "c")
    assert bench.clean is not None and bench.class_to_index == {"cat": 0, "dog": 1, "eel": 2}
    # imagenet parameters: Resize + CenterCrop to --crop first
    man = make_c(str(src), tmp_path / "i", corruptions=["contrast"], params="imagenet", crop=48, progress=False)
    assert man["layout"] == "folder" and man["image_shape"] == [48, 48, 3]


def test_make_c_errors(tmp_path, source):
    src = source[0]
    for kwargs, match in [
        ({"corruptions": ["rain"]}, "unknown corruption"),
        ({"params": "tiny"}, "params must be one of"),
        ({"layout": "zip"}, "layout must be 'npy' or 'folder'"),
        ({"crop": 4}, "crop must be an integer >= 8"),
        ({"num_workers": 0}, "must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_c(str(src), tmp_path / "x", progress=False, **kwargs)
    mixed = tmp_path / "mixed" / "test"
    from PIL import Image

    for cls, size in (("a", 32), ("b", 40)):
        (mixed / cls).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size)).save(mixed / cls / "0.png")
    with pytest.raises(ValueError, match=r"different sizes .* give --crop SIZE"):
        make_c(str(tmp_path / "mixed"), tmp_path / "y", corruptions=["fog"], progress=False)


def _tiny_model_dir(tmp_path: Path) -> Path:
    from timm_dynmix import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("resnet8_cifar", num_classes=10)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return save_pretrained(model, tmp_path / "model", label_names=names, card=False)


def test_load_eval_model(tmp_path):
    from safetensors.torch import save_file

    from timm_dynmix import create_model

    model = create_model("resnet8_cifar", num_classes=7)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    for f in ("w.safetensors", "w.pth"):
        loaded = load_eval_model("resnet8_cifar", tmp_path / f)
        assert loaded.num_classes == 7 and not loaded.training
    with pytest.raises(ValueError, match=r"does not fit architecture 'resnet20_cifar'"):
        load_eval_model("resnet20_cifar", tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at"):
        load_eval_model("resnet8_cifar", tmp_path / "missing.pth")


def test_cli_errors(tmp_path, capsys):
    make_coded_c(tmp_path / "c")
    cases = [
        (["eval", "--model", "resnet8_cifar"], "eval needs --model, --benchmark and --out"),
        (["eval", "--model", "x", "--benchmark", "cifar10-c", "--out", str(tmp_path / "o"), "--checkpoint",
          str(tmp_path / "none.pth")], "no checkpoint at"),
        (["eval", "--compare", str(tmp_path / "c")], "no report.json in"),
        (["make-c", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "no dataset at"),
    ]
    for argv, match in cases:
        assert main(argv) == 2
        assert match in capsys.readouterr().err, argv
    from timm_dynmix.robustness.evaluate import load_benchmark

    with pytest.raises(ValueError, match=r"unknown benchmark 'imagenet-x'"):
        load_benchmark("imagenet-x")
    with pytest.raises(ValueError, match=r"--benchmark cifar10-c needs --data-dir"):
        load_benchmark("cifar10-c")
    with pytest.raises(ValueError, match=r"already holds its clean images; drop --clean"):
        load_benchmark(str(tmp_path / "c"), clean="digits")


@pytest.mark.usefixtures("eval_extra")
@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, CPU) splits the cells' batches; the report equals one process's."""
    make_coded_c(tmp_path / "c", k=18)
    model_dir = _tiny_model_dir(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                                    "")}
    args = ["-m", "timm_dynmix.cli", "eval", "--model", f"local-dir:{model_dir}", "--benchmark", str(tmp_path / "c"),
            "--batch-size", "8", "--no-progress", "--no-plots"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args, "--out",
              str(tmp_path / "two")]
    two = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600)
    if two.returncode != 0 and any(m in two.stderr for m in ("Address already in use", "EADDRINUSE", "Rendezvous")):
        two = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600)  # a port race, once
    assert two.returncode == 0, (two.stdout[-2000:], two.stderr[-4000:])
    a = json.loads((tmp_path / "one" / "report.json").read_text())
    b = json.loads((tmp_path / "two" / "report.json").read_text())
    assert a["run"]["world_size"] == 1 and b["run"]["world_size"] == 2
    assert b["run"]["num_images"] == a["run"]["num_images"] == 18 * 16  # no sample counted twice
    for x, y in zip(a["cells"], b["cells"]):
        assert x["error"] == y["error"] and x["n"] == y["n"] == 18
        assert x["rms_calibration_error"] == pytest.approx(y["rms_calibration_error"], abs=1e-3)
    assert a["clean_error"] == b["clean_error"] and a["corruption_error"] == b["corruption_error"]


@pytest.mark.usefixtures("eval_extra")
@pytest.mark.slow
def test_full_path_on_real_cifar10(tmp_path, capsys):
    """make-c on real CIFAR-10 test images -> eval of a (tiny, untrained) model -> report, plots, model card."""
    if not (CIFAR10_DIR / "cifar10_test_jpeg.npz").is_file():
        pytest.skip("CIFAR-10 copy not found at ../shared/data/cifar10")
    out = tmp_path / "c10c"
    assert main(["make-c", "--dataset", str(CIFAR10_DIR), "--params", "cifar", "--max-per-cell", "10", "--out",
                 str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 19 corruption(s) x 5 severities x 10 images" in printed and "seconds per 1000 images" in printed
    assert sorted(p.stem for p in out.glob("*.npy")) == sorted([*ALL_CORRUPTIONS, "clean", "labels"])
    man = json.loads((out / "make_c.json").read_text())
    assert man["split"] == "test" and man["label_names"][0] == "airplane" and len(man["indices"]) == 10
    model_dir = _tiny_model_dir(tmp_path)
    reports = []
    for name, extra in (("a", []), ("b", ["--max-per-cell", "5", "--rms-skip-last-bin"])):
        assert main(["eval", "--model", f"local-dir:{model_dir}", "--benchmark", str(out), "--out",
                     str(tmp_path / name), "--no-progress", *extra]) == 0
        reports.append(tmp_path / name)
    md = capsys.readouterr().out
    assert "Top-1 error (%) per corruption and severity" in md
    data = json.loads((tmp_path / "a" / "report.json").read_text())
    assert data["benchmark"] == "cifar-c-regenerated" and data["dataset"]["type"] == "make-c"
    assert list(data["per_corruption"]) == list(CORRUPTIONS) and len(data["cells"]) == 95
    assert data["clean"]["n"] == 10 and data["cells"][0]["n"] == 10
    assert data["protocol"]["preprocessing"].endswith("mean [0.5, 0.5, 0.5] and std [0.5, 0.5, 0.5]")
    rep = load_eval_report(tmp_path / "a")
    assert rep.clean_error is not None and len(rep.per_corruption) == 15 and len(rep.plots) == 3
    assert json.loads((tmp_path / "b" / "report.json").read_text())["cells"][0]["n"] == 5
    # side by side
    # an untrained model folder records no training configuration: --compare refuses unless told otherwise
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) != 0
    assert "recorded no resolved configuration" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"),
                 "--allow-diff", "*"]) == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| Corruption error (%) |" in table and "| gaussian_noise |" in table
    assert "**Not an identical configuration**" in table and "not recorded" in table
    assert compare_reports(reports, allow_diff=["*"]).startswith("## Comparison on cifar-c-regenerated")


def test_folder_benchmark_with_clean_set(tmp_path):
    """ImageNet-style tree of 2 wnids and a separate clean image folder: labels map to ImageNet-1k indices."""
    from PIL import Image

    from timm_dynmix.robustness.evaluate import load_benchmark

    wnids = ("n01440764", "n15075141")  # ImageNet-1k classes 0 and 999
    for s in range(1, 6):
        for w in wnids:
            d = tmp_path / "inc" / "blur" / "zoom_blur" / str(s) / w
            d.mkdir(parents=True)
            Image.new("RGB", (16, 16), (s, 0, 0)).save(d / "a.JPEG")
    for w in wnids:
        (tmp_path / "val" / w).mkdir(parents=True)
        for i, size in enumerate(((300, 400), (500, 333))):  # validation images of any size
            Image.new("RGB", size).save(tmp_path / "val" / w / f"{i}.JPEG")
    model = Constant(num_classes=1000)
    bench = load_benchmark("imagenet-c", data_dir=str(tmp_path / "inc"), clean=str(tmp_path / "val"), model=model)
    clean = bench.clean
    assert clean is not None and sorted(clean.source.label(i) for i in range(4)) == [0, 0, 999, 999]
    zoom = bench.cells[1]
    assert zoom.corruption == "zoom_blur" and [zoom.source.label(i) for i in range(2)] == [0, 999]
    report = build_report(evaluate_corruptions(model, bench, progress=False), model, meta={"name": "imagenet-c"})
    # class 0 is right on half of the images; mCE = mean_s(0.5) / mean_s(AlexNet zoom_blur errors)
    assert report["clean_error"] == 50.0 and report["per_corruption"] == {"zoom_blur": 50.0}
    assert report["mce"] == pytest.approx(100 * 0.5 / np.mean([0.70008, 0.76992, 0.80784, 0.84198, 0.87198]), abs=1e-3)
    assert set(report["summary"]["relative_mce"]) == {"per_severity", "once"}
    assert report["protocol"]["clean_preprocessing"].startswith("Resize(256) + CenterCrop(224)")


def test_cli_named_benchmark_with_clean_dataset(tmp_path, real_images, capsys):
    make_coded_c(tmp_path / "CIFAR-10-C", k=10)
    (tmp_path / "CIFAR-10-C" / "clean.npy").unlink()  # the released layout has no clean images
    images = np.stack([np.asarray(im) for im in real_images[:10]])
    _source_npz(tmp_path / "cifar10", images, np.arange(10).astype(np.uint8), [f"c{i}" for i in range(10)])
    model_dir = _tiny_model_dir(tmp_path)
    assert main(["eval", "--model", f"local-dir:{model_dir}", "--benchmark", "cifar10-c", "--data-dir",
                 str(tmp_path / "CIFAR-10-C"), "--clean", str(tmp_path / "cifar10"), "--severities", "1,5",
                 "--corruptions", "fog", "--out", str(tmp_path / "r"), "--no-plots", "--no-progress"]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["benchmark"] == "cifar10-c" and data["dataset"]["name"] == "CIFAR-10-C"
    assert data["clean"]["n"] == 10 and [(c["corruption"], c["severity"]) for c in data["cells"]] == [
        ("fog", 1), ("fog", 5)]
    assert load_eval_report(tmp_path / "r").clean_error == data["clean_error"]
    assert main(["eval", "--model", f"local-dir:{model_dir}", "--benchmark", "cifar10-c", "--data-dir",
                 str(tmp_path / "CIFAR-10-C"), "--corruptions", "frost", "--out", str(tmp_path / "r2")]) == 2
    assert "corruption frost not found in" in capsys.readouterr().err


@pytest.mark.slow
def test_errors_inside_data_loading_are_one_line(tmp_path):
    from PIL import Image

    from timm_dynmix.robustness.readers import read_folder_c

    for s in range(1, 6):
        for cls, size in (("a", 16), ("b", 20)):
            d = tmp_path / "c" / "fog" / str(s) / cls
            d.mkdir(parents=True)
            Image.new("RGB", (size, size)).save(d / "x.png")
    bench = read_folder_c(tmp_path / "c")
    for workers in (0, 1):
        with pytest.raises(ValueError, match=r"^items of different shapes in one batch") as info:
            evaluate_corruptions(Constant(), bench, batch_size=4, num_workers=workers, progress=False)
        assert "Traceback" not in str(info.value)
    (tmp_path / "c" / "fog" / "2" / "a" / "x.png").write_bytes(b"not a png")
    for workers in (0, 1):
        with pytest.raises(ValueError, match=r"^cannot decode .*x.png: cannot identify image file") as info:
            evaluate_corruptions(Constant(), bench, batch_size=1, num_workers=workers, progress=False)
        assert "Traceback" not in str(info.value)


def test_imagenet_3dcc_uses_its_own_corruptions_and_baseline(tmp_path):
    from PIL import Image

    from timm_dynmix.robustness.evaluate import load_benchmark
    from timm_dynmix.robustness.metrics import ALEXNET_3DCC_ERRORS

    for c in ("near_focus", "fog_3d", "fog"):
        for s in range(1, 6):
            for w in ("n01440764", "n01443537"):
                d = tmp_path / "3dcc" / c / str(s) / w
                d.mkdir(parents=True)
                Image.new("RGB", (16, 16)).save(d / "a.JPEG")
    model = Constant(num_classes=1000)
    bench = load_benchmark("imagenet-3dcc", data_dir=str(tmp_path / "3dcc"), model=model)
    result = evaluate_corruptions(model, bench, num_workers=0, progress=False)
    report = build_report(result, model, meta={"name": "imagenet-3dcc"})
    assert list(report["per_corruption"]) == ["near_focus", "fog_3d"] and list(report["extra_corruptions"]) == ["fog"]
    expected = 100 * np.mean([0.5 / ALEXNET_3DCC_ERRORS["near_focus"], 0.5 / ALEXNET_3DCC_ERRORS["fog_3d"]])
    assert report["mce"] == pytest.approx(expected, abs=1e-3) and "RobustBench" in report["summary"]["mce_baseline"]
    # a user baseline replaces it
    custom = build_report(result, model, meta={"name": "imagenet-3dcc"}, baseline={"near_focus": 0.5,
                                                                                 "fog_3d": [0.25] * 5})
    assert custom["mce"] == pytest.approx(100 * (1.0 + 2.0) / 2, abs=1e-3)


_TRAINING = {"model": "fastnet_cifar", "stem": "learned", "data_path": "memory", "epochs": 20, "seed": 0,
             "aug": "none", "jsd": False, "output_dir": "somewhere"}


def _fake_report(folder: Path, per_corruption: dict[str, float], clean: float, **training) -> Path:
    folder.mkdir(parents=True)
    report = {"benchmark": "cifar-c-regenerated", "model": {"name": "m"}, "clean_error": clean,
              "corruption_error": sum(per_corruption.values()) / len(per_corruption), "per_corruption": per_corruption,
              "training_config": {**_TRAINING, "output_dir": str(folder), **training}}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def test_compare_labels_and_plot(tmp_path):
    from timm_dynmix.robustness.report import compare_plot, load_reports

    a = _fake_report(tmp_path / "runs" / "standard_seed0" / "eval", {"gaussian_noise": 60.0, "fog": 20.0}, 9.0)
    b = _fake_report(tmp_path / "runs" / "dynmix_seed0" / "eval", {"gaussian_noise": 30.0, "fog": 25.0}, 10.0,
                     aug="dynmix-ocifar", jsd=True)
    # the shared folder name "eval" tells nothing: the labels are the parts that differ; LABEL=DIR overrides
    assert [label for label, _ in load_reports([a, b])] == ["standard_seed0", "dynmix_seed0"]
    assert [label for label, _ in load_reports([f"ours={a}", b])] == ["ours", "dynmix_seed0"]
    assert "| standard_seed0 (`m`) | dynmix_seed0 (`m`) |" in compare_reports([a, b])
    assert compare_reports(load_reports([a, b])) == compare_reports([a, b])  # loaded once, used as they are
    plotted = compare_plot([a, b], tmp_path / "cmp" / "compare.png")
    assert plotted["labels"] == ["standard_seed0", "dynmix_seed0"]
    assert plotted["groups"] == ["gaussian_noise", "fog", "clean", "mean -C"]
    assert plotted["errors"] == [[60.0, 20.0, 9.0, 40.0], [30.0, 25.0, 10.0, 27.5]]
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", "--compare", f"std={a}", f"dyn={b}", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "compare.png").is_file() and "| std (`m`) | dyn (`m`) |" in (
        tmp_path / "cli" / "compare.md").read_text()
    with pytest.raises(FileNotFoundError, match=r"no report\.json in"):
        load_reports([tmp_path / "runs"])
    clean_only = []
    for name in ("p", "q"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps({"benchmark": "x", "clean_error": 1.0}), "utf-8")
        clean_only.append(tmp_path / name)
    assert np.isnan(compare_plot([clean_only[0], a], tmp_path / "x.png")["errors"][0][0])  # missing: a gap
    with pytest.raises(ValueError, match="no corruption errors to plot"):
        compare_plot(clean_only, tmp_path / "x.png")


@pytest.mark.parametrize("n", [2, 11, 23])
def test_compare_plot_gives_every_report_its_own_colour(tmp_path, n):
    # matplotlib's default colour cycle repeats after 10 bars: the 11th arm of the study drew in the 1st arm's colour
    from timm_dynmix.robustness.report import compare_plot

    folders = [_fake_report(tmp_path / f"arm{k}" / "eval", {"fog": 10.0 + k}, 5.0) for k in range(n)]
    colors = compare_plot(folders, tmp_path / "c.png")["colors"]
    assert len(colors) == n and len(set(colors)) == n


def test_compare_refuses_runs_that_trained_differently(tmp_path, capsys):
    """The v1 study's confound: same augmentation question, different stems. --compare names the field and both
    values; --allow-diff accepts it and states it under the table; the augmentation fields may differ freely."""
    a = _fake_report(tmp_path / "std" / "eval", {"gaussian_noise": 66.0}, 9.8, stem="whitened")
    b = _fake_report(tmp_path / "aug" / "eval", {"gaussian_noise": 18.0}, 9.9, aug="augmix", jsd=True,
                     data_path="loader")
    with pytest.raises(ValueError, match=r"differ in data_path, stem") as err:
        compare_reports([a, b])
    assert "stem: std='whitened', aug='learned'" in str(err.value) and "--allow-diff" in str(err.value)
    # allowing one field is not allowing the other; the CLI prints one clear error
    assert main(["eval", "--compare", str(a), str(b), "--allow-diff", "stem"]) != 0
    assert "differ in data_path (not an augmentation/loss field)" in capsys.readouterr().err
    assert main(["eval", "--compare", str(a), str(b), "--allow-diff", "stem", "--allow-diff", "data_path"]) == 0
    out = capsys.readouterr().out
    assert "**Not an identical configuration**" in out and "- `stem`: std = 'whitened', aug = 'learned'" in out
    same = _fake_report(tmp_path / "same" / "eval", {"gaussian_noise": 20.0}, 9.9, aug="augmix", jsd=True)
    assert "Not an identical configuration" not in compare_reports([_fake_report(
        tmp_path / "std2" / "eval", {"gaussian_noise": 66.0}, 9.8), same])  # only aug/jsd differ: no note
