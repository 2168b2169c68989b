"""The CIFAR-10-C study (benchmarks/robustness_cifar10.py): its plan, its tables, a tiny end-to-end run and resume."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "robustness_cifar10.py"


def _load():
    spec = importlib.util.spec_from_file_location("robustness_cifar10", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _fake_result(arm: str, seed: int, corruption_error: float, clean_error: float = 10.0) -> dict:
    return {"arm": arm, "seed": seed, "clean_error": clean_error, "corruption_error": corruption_error,
            "rms_calibration_error_clean": 5.0, "rms_calibration_error_corrupted": 12.0, "train_time_s": 600.0,
            "errors_by_corruption": {"fog": corruption_error + 1, "snow": corruption_error - 1},
            "errors_by_severity": {"1": corruption_error - 2, "5": corruption_error + 2},
            "extra_corruptions": {"spatter": corruption_error / 2}}


def test_plan_priority_order_and_best_variant(tmp_path, capsys):
    study = _load()
    assert [a.group for a in study.ARMS] == sorted(a.group for a in study.ARMS)  # a, then b, then c
    names = {a.name for a in study.ARMS}
    assert set(study.SEED_ARMS) <= names and set(study.DYNMIX_CANDIDATES) <= names
    results = tmp_path / "results"
    assert study.main(["--results-dir", str(results), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("todo  a standard_seed0")
    assert sum(line.endswith("--aug augmix") for line in lines) == 3  # seed 0, 1 and 2
    assert not any("seed1" in line and "dynmix-b1" in line for line in lines)  # best variant unknown yet
    # once every DynMix candidate has its seed-0 result, the best of them joins group d
    for i, name in enumerate(study.DYNMIX_CANDIDATES):
        study._write_json(results / f"{name}_seed0.json", _fake_result(name, 0, 20.0 - (name == "dynmix_blend_jsd")
                                                                         * 5 + i * 0.1))
    assert study.main(["--results-dir", str(results), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "done  b dynmix_blend_jsd_seed0: --aug dynmix-b1" in lines
    assert "todo  d dynmix_blend_jsd_seed1: --aug dynmix-b1" in lines
    assert "todo  d dynmix_blend_jsd_seed2: --aug dynmix-b1" in lines
    with pytest.raises(SystemExit):
        study.main(["--arms", "standard,nope", "--list"])
    with pytest.raises(SystemExit):
        study.main(["--priority", "a,x", "--list"])


def test_summary_mean_and_std_over_seeds(tmp_path):
    study = _load()
    for seed, err in enumerate((10.0, 12.0, 14.0)):
        study._write_json(tmp_path / f"standard_seed{seed}.json", _fake_result("standard", seed, err))
    study._write_json(tmp_path / "augmix_jsd_seed0.json", _fake_result("augmix_jsd", 0, 9.5))
    text = study.summary_markdown(study.load_results(tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| Standard |"))
    assert "| 0,1,2 |" in row and "| 12.00 ± 2.00 |" in row and "| 26.9 |" in row  # sample std of 10, 12, 14
    row = next(line for line in text.splitlines() if line.startswith("| AugMix + JSD (paper ops) |"))
    assert "| 9.50 |" in row and "| 11.2 |" in row
    assert "| fog | 13.0 | 10.5 |" in text and "| 5 | 14.0 | 11.5 |" in text  # per corruption, per severity
    assert "| spatter | 6.0 | 4.8 |" in text.split("extra (validation) corruptions")[1]
    assert "Table 5 layout" not in text  # no ablation finished yet
    for seed, err in enumerate((8.0, 9.0)):
        study._write_json(tmp_path / f"dynmix_jsd_seed{seed}.json", _fake_result("dynmix_jsd", seed, err))
    study._write_json(tmp_path / "dynmix_linear_jsd_seed0.json", _fake_result("dynmix_linear_jsd", 0, 10.0))
    study._write_json(tmp_path / "dynmix_blend_jsd_seed0.json", _fake_result("dynmix_blend_jsd", 0, 7.0))
    text = study.summary_markdown(study.load_results(tmp_path))
    table5 = text.split("Table 5 layout")[1].split("\n\n")[1].splitlines()
    assert table5[2].startswith("| DynMix + JSD (literal) | a | 0,1 | 10.00 ± 0.00 | 8.50 ± 0.71 | | 5.00 ± 0.00 / "
                                "12.00 ± 0.00 |")
    assert table5[3].startswith("| DynMix + JSD, linear component only | c | 0 | 10.00 | 10.00 | +1.50 |")
    assert table5[4].startswith("| AugMix + JSD (paper ops) | a | 0 | 10.00 | 9.50 | | 5.00 / 12.00 |")
    assert ("- DynMix + JSD (literal) against AugMix + JSD (paper ops): -1.00 points of CIFAR-10-C error (DynMix + "
            "JSD (literal) 8.50 over seeds 0,1, AugMix + JSD (paper ops) 9.50 over seeds 0); seed std 0.71 / n/a (1 "
            "seed)") in text
    assert "- the best DynMix variant (DynMix + JSD, skip blend) against AugMix + JSD (paper ops): -2.50 points" in text
    assert "- the non-linear term: literal DynMix against its linear component: -1.50 points" in text


@pytest.mark.usefixtures("eval_extra")
@pytest.mark.slow
def test_tiny_study_end_to_end_and_resume(tmp_path):
    """Two arms on 200 digit images, every corruption on 20 class-balanced test images; a rerun redoes nothing."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images[:, :, :, None] * (255 / 16), np.ones((1, 4, 4, 3))).astype(np.uint8)  # 32x32 RGB
    y = digits.target.astype(np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "tiny_train_uint8.npz", x_train=x[:200], y_train=y[:200])
    np.savez(data / "tiny_test_uint8.npz", x_test=x[1000:1200], y_test=y[1000:1200])
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: resnet8_cifar\nepochs: 1\nbatch_size: 50\nlr: 0.05\nnum_workers: 0\n")
    results, work = tmp_path / "results", tmp_path / "work"
    study = _load()
    argv = ["--data-dir", str(data), "--work-dir", str(work), "--results-dir", str(results), "--recipe", str(recipe),
            "--per-cell", "20", "--arms", "standard,dynmix_jsd"]
    assert study.main(argv) == 0
    files = sorted(p.name for p in results.glob("*.json"))
    assert files == ["dynmix_jsd_seed0.json", "standard_seed0.json"]
    r = json.loads((results / "dynmix_jsd_seed0.json").read_text())
    assert r["jsd"] is True and r["aug"].startswith("dynmix-") and r["group"] == "a"
    assert len(r["errors_by_corruption"]) == 15 and len(r["extra_corruptions"]) == 4
    assert set(r["errors_by_severity"]) == {"1", "2", "3", "4", "5"}
    assert 0 <= r["clean_error"] <= 100 and 0 <= r["corruption_error"] <= 100 and r["train_images_per_s"] > 0
    assert r["commands"]["train"].startswith("python -m timm_dynmix.cli train -c ")
    assert "--aug dynmix --seed 0" in r["commands"]["train"] and "--resume latest" in r["commands"]["train"]
    assert "--class-balanced" in r["commands"]["make_c"] and r["provenance"]["cores"] >= 1
    manifest = json.loads((work / "cifar10-c-20" / "make_c.json").read_text())
    assert manifest["class_balanced"] is True and manifest["split"] == "test"
    labels = np.load(work / "cifar10-c-20" / "labels.npy")[:20]
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    # a rerun finds everything done: no training or evaluation runs again
    stamps = {p: p.stat().st_mtime_ns for p in (work / "runs").rglob("results.json")}
    assert study.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (work / "runs").rglob("results.json")} == stamps
    assert study.main(["--results-dir", str(results), "--work-dir", str(work), "--summary"]) == 0
    assert "| DynMix + JSD (literal) |" in (results / "summary.md").read_text()
    assert (results / "compare_table1.png").is_file()  # standard and dynmix_jsd side by side, from their JSONs
    assert not (results / "compare_variants_ablations.png").exists()  # only one of its arms ran


def test_summary_plots_come_from_the_result_files(tmp_path, monkeypatch):
    """--summary draws the comparison figures from the seed-0 result JSONs alone: a work dir without any evaluation
    report (a fresh machine) still gets every finished arm in the plots, and seeds 1-2 are not mixed in."""
    import timm_dynmix.robustness.report as report

    study = _load()
    results = tmp_path / "results"
    for name, err in (("standard", 29.0), ("augmix_jsd", 16.0), ("dynmix_jsd", 20.0), ("dynmix_upright_jsd", 17.0)):
        study._write_json(results / f"{name}_seed0.json", _fake_result(name, 0, err))
    study._write_json(results / "dynmix_jsd_seed1.json", _fake_result("dynmix_jsd", 1, 50.0))
    drawn = {}
    real = report.compare_plot

    def spy(reports, path):
        drawn[Path(path).name] = real(reports, path)
        return drawn[Path(path).name]

    monkeypatch.setattr(report, "compare_plot", spy)
    assert study.main(["--results-dir", str(results), "--work-dir", str(tmp_path / "empty-work"), "--summary"]) == 0
    assert (results / "compare_table1.png").is_file() and (results / "compare_variants_ablations.png").is_file()
    table1 = drawn["compare_table1.png"]
    assert table1["labels"] == ["standard", "augmix_jsd", "dynmix_jsd"]
    assert table1["groups"] == ["fog", "snow", "clean", "mean -C"]
    assert table1["errors"][2] == [21.0, 19.0, 10.0, 20.0]  # dynmix_jsd seed 0, not seed 1's 50.0
    assert drawn["compare_variants_ablations.png"]["labels"] == ["augmix_jsd", "dynmix_jsd", "dynmix_upright_jsd"]
