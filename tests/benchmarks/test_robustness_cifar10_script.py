"""The CIFAR-10-C study (benchmarks/robustness_cifar10.py): its plan, its tables, a tiny end-to-end run and resume."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "robustness_cifar10.py"


def _load(path: Path = SCRIPT, name: str = "robustness_cifar10"):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


_RESOLVED = {"model": "fastnet_cifar", "stem": "learned", "data_path": "memory", "epochs": 20, "aug": "none",
             "jsd": False, "seed": 0}


def _fake_result(arm: str, seed: int, corruption_error: float, clean_error: float = 10.0,
                 cbar_error: float | None = None, **resolved) -> dict:
    return {"arm": arm, "seed": seed, "clean_error": clean_error, "corruption_error": corruption_error,
            "cbar_error": cbar_error, "rms_calibration_error_clean": 5.0, "rms_calibration_error_corrupted": 12.0,
            "train_time_s": 600.0, "errors_by_corruption": {"fog": corruption_error + 1, "snow": corruption_error - 1},
            "errors_by_family": {"weather": corruption_error},
            "errors_by_severity": {"1": corruption_error - 2, "5": corruption_error + 2},
            "benchmark": {"name": "cifar10-C regenerated"},
            "resolved_config": {**_RESOLVED, "seed": seed, "aug": arm, **resolved}}


def test_plan_priority_order_and_top_two(tmp_path, capsys):
    study = _load()
    results = tmp_path / "results"
    assert study.main(["--results-dir", str(results), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == [
        "todo  a standard_seed0", "todo  a augmix_jsd_seed0", "todo  a dynmix_jsd_seed0",
        "todo  a dynmix_upright_jsd_seed0", "todo  a prime_jsd_seed0", "todo  s standard_whitened_stem_seed0"]
    assert "todo  s standard_whitened_stem_seed0: --aug none --stem whitened" in lines
    assert sum(line.endswith("--aug augmix") for line in lines) == 3  # seed 0, 1 and 2
    assert not any("_2x" in line for line in lines)  # the top two are unknown yet
    for i, name in enumerate(study.METHODS):
        for seed in study.SEEDS:
            study._write_json(results / f"{name}_seed{seed}.json", _fake_result(name, seed, 20.0 - i))
    assert study.main(["--results-dir", str(results), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["todo  e prime_jsd_2x_seed0: --aug prime", "todo  e dynmix_upright_jsd_2x_seed0: --aug "
                          "dynmix-ocifar_upright"]
    study.Study(study.main.__globals__["argparse"].Namespace(
        work_dir=tmp_path, results_dir=results, per_cell=20, no_cbar=True))  # constructible without C-bar
    with pytest.raises(SystemExit):
        study.main(["--arms", "standard,nope", "--list"])
    with pytest.raises(SystemExit):
        study.main(["--priority", "a,x", "--list"])


def test_summary_checks_configurations_and_calls_ties(tmp_path, capsys):
    study = _load()
    for seed, (c, cb) in enumerate(((30.0, 28.0), (31.0, 29.0), (32.0, 30.0))):
        study._write_json(tmp_path / f"standard_seed{seed}.json", _fake_result("standard", seed, c, cbar_error=cb))
    for seed, (c, cb) in enumerate(((16.0, 20.0), (16.5, 20.5), (17.0, 21.0))):
        study._write_json(tmp_path / f"augmix_jsd_seed{seed}.json", _fake_result(
            "augmix_jsd", seed, c, cbar_error=cb, jsd=True))
    for seed, (c, cb) in enumerate(((15.0, 24.0), (16.0, 25.0), (17.0, 26.0))):
        study._write_json(tmp_path / f"dynmix_jsd_seed{seed}.json", _fake_result(
            "dynmix_jsd", seed, c, cbar_error=cb, jsd=True))
    text = study.summary_markdown(study.load_results(tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| Standard |"))
    assert "| 0,1,2 | 10.00 ± 0.00 | 31.00 ± 1.00 | 29.00 ± 1.00 |" in row  # sample std over seeds
    assert "- Standard against AugMix + JSD: worse (C +14.50, seed std 1.00 / 0.50, C-bar +8.50" in text
    # DynMix is 0.5 better on C but 4.5 worse on C-bar: not better on both, so a tie, whatever C says
    assert "- AugMix + JSD against DynMix + JSD (paper): tie (C +0.50" in text
    assert "Published figures, for context only" in text and "Mintun et al., WRN-40-2: C 11.1 / C-bar 16.0" in text
    assert "| Standard | - | - | 31.0 | - |" in text.split("per corruption family")[1]
    # the v1 confound: one arm with another stem is refused, naming the field; --allow-diff states it
    study._write_json(tmp_path / "augmix_jsd_seed2.json", _fake_result("augmix_jsd", 2, 17.0, cbar_error=21.0,
                                                                       jsd=True, stem="whitened"))
    with pytest.raises(ValueError, match=r"differ in stem .*\n  stem: standard_seed0='learned', augmix_jsd_seed2="):
        study.summary_markdown(study.load_results(tmp_path))
    with pytest.raises(ValueError, match="differ in stem"):
        study.main(["--results-dir", str(tmp_path), "--summary"])
    assert study.main(["--results-dir", str(tmp_path), "--summary", "--allow-diff", "stem"]) == 0
    assert "- `stem`: standard_seed0 = 'learned'" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "c_vs_cbar.png").read_bytes()[:4] == b"\x89PNG"
    # a v1 result file (no resolved configuration) is refused
    v1 = _fake_result("mixup", 0, 30.0)
    v1.pop("resolved_config")
    study._write_json(tmp_path / "mixup_seed0.json", v1)
    with pytest.raises(ValueError, match="recorded no resolved configuration"):
        study.summary_markdown(study.load_results(tmp_path), ["stem"])


def test_stem_table_compares_the_stem_only(tmp_path):
    study = _load()
    study._write_json(tmp_path / "standard_seed0.json", _fake_result("standard", 0, 23.0, trainable_params=1000))
    study._write_json(tmp_path / "standard_whitened_stem_seed0.json", _fake_result(
        "standard_whitened_stem", 0, 29.4, aug="standard", stem="whitened", trainable_params=900))  # frozen stem
    text = study.summary_markdown(study.load_results(tmp_path))
    stem = text.split("Stem choice")[1]
    assert "| Standard (`stem: learned`) | 0 | 10.00 | 23.00 |" in stem
    assert "| Standard, frozen whitened stem (v1's) (`stem: whitened`) | 0 | 10.00 | 29.40 |" in stem
    # the per-family errors of the pair, where v1's gap sat
    assert "| Standard, frozen whitened stem (v1's) | - | - | 29.4 | - |" in stem.split("per corruption family")[1]
    study._write_json(tmp_path / "standard_whitened_stem_seed0.json", _fake_result(
        "standard_whitened_stem", 0, 29.4, aug="standard", stem="whitened", epochs=40))
    with pytest.raises(ValueError, match="differ in epochs"):  # anything beyond the stem is still refused
        study.summary_markdown(study.load_results(tmp_path))


@pytest.mark.usefixtures("eval_extra")
@pytest.mark.slow
def test_tiny_study_end_to_end_and_resume(tmp_path):
    """Two arms (trained two at a time) on 200 digit images, every corruption on 20 class-balanced test images; a
    rerun redoes nothing."""
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
            "--per-cell", "20", "--arms", "standard,dynmix_jsd", "--no-cbar", "--jobs", "2"]
    assert study.main(argv) == 0
    files = sorted(p.name for p in results.glob("*.json"))
    assert files == ["dynmix_jsd_seed0.json", "standard_seed0.json"]
    r = json.loads((results / "dynmix_jsd_seed0.json").read_text())
    assert r["jsd"] is True and r["aug"].startswith("dynmix-") and r["group"] == "a" and r["cbar_error"] is None
    assert r["resolved_config"]["stem"] == "learned" and r["resolved_config"]["data_path"] == "memory"
    assert set(r["errors_by_family"]) == {"noise", "blur", "weather", "digital"}
    assert len(r["errors_by_corruption"]) == 15 and len(r["extra_corruptions"]) == 4
    assert set(r["errors_by_severity"]) == {"1", "2", "3", "4", "5"}
    assert 0 <= r["clean_error"] <= 100 and 0 <= r["corruption_error"] <= 100 and r["train_images_per_s"] > 0
    assert r["commands"]["train"].startswith("python -m timm_dynmix.cli train -c ")
    assert "--aug dynmix --seed 0" in r["commands"]["train"] and "--resume latest" in r["commands"]["train"]
    assert "--class-balanced" in r["commands"]["make_c_c"] and r["provenance"]["cores"] >= 1
    manifest = json.loads((work / "cifar10-c-20" / "make_c.json").read_text())
    assert manifest["class_balanced"] is True and manifest["split"] == "test"
    labels = np.load(work / "cifar10-c-20" / "labels.npy")[:20]
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    # a rerun finds everything done: no training or evaluation runs again
    stamps = {p: p.stat().st_mtime_ns for p in (work / "runs").rglob("results.json")}
    assert study.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (work / "runs").rglob("results.json")} == stamps
    assert study.main(["--results-dir", str(results), "--work-dir", str(work), "--summary"]) == 0
    assert "| DynMix + JSD (paper) | 0 |" in (results / "summary.md").read_text()  # the configurations checked
    # push-ready cards for the top arms (here both), weights copied in, then pushed to a loopback Hub as a user would
    cards = tmp_path / "cards"
    assert study.main(["--results-dir", str(results), "--work-dir", str(work), "--cards", "--cards-dir", str(cards),
                       "--top", "2", "--with-weights"]) == 0
    folders = sorted(p.name for p in cards.iterdir() if p.is_dir())
    assert folders == ["resnet8_cifar.dynmix_jsd_cifar10", "resnet8_cifar.standard_cifar10"]
    card = (cards / folders[0] / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    results_index = front["model-index"][0]["results"]
    names = [r["dataset"]["name"] for r in results_index]
    assert "cifar10" in names and any("-C regenerated" in n for n in names)  # clean test accuracy, the -C benchmark
    assert front["training_config"]["aug"].startswith("dynmix-") and front["training_config"]["stem"] == "learned"
    record = json.loads((cards / folders[0] / "study_record.json").read_text())
    assert record["commands"]["train"] == r["commands"]["train"] and record["resolved_config"] == r["resolved_config"]
    index = (cards / "README.md").read_text()
    assert "| `resnet8_cifar.dynmix_jsd_cifar10` | DynMix + JSD (paper) | 0 |" in index
    for path in cards.rglob("*.md"):  # no local path in the cards (the commands are shown relative to the checkout
        assert str(tmp_path) not in path.read_text(), path  # or home: a temporary folder is neither)
    assert record["resolved_config"]["output_dir"] == r["resolved_config"]["output_dir"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    hub_server = _load(SCRIPT.parents[1] / "tests" / "hub" / "hub_server.py", "hub_server")
    with hub_server.LoopbackHub() as hub:
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN="hf_FAKEcardsTOKEN0123456789abcdefXYZ", HF_HUB_OFFLINE="0",
                   HF_HOME=str(tmp_path / "home"), NO_PROXY="127.0.0.1,localhost")
        proc = subprocess.run([sys.executable, "-m", "timm_dynmix.cli", "push", str(cards / folders[0]),
                               f"org/{folders[0]}"], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        pushed = hub.files(f"org/{folders[0]}")
        assert pushed["model.safetensors"] == (work / "runs" / "dynmix_jsd_seed0" / "model.safetensors").read_bytes()
        assert "model-index" in pushed["README.md"].decode()
