"""Model cards: evaluation report schema, rendering from results.json, metadata round trip, `timm-dynmix card`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from huggingface_hub import EvalResult, ModelCard
from PIL import Image

from timm_dynmix.cli import main
from timm_dynmix.hub.card import (
    CARD_TAGS,
    REPO_ID_PLACEHOLDER,
    EvalReport,
    card_data,
    load_eval_report,
    render_card,
    templates_dir,
    validate_card,
    write_card,
)

ROOT = Path(__file__).resolve().parents[2]

CONFIG = {
    "architecture": "resnet18", "num_classes": 10, "label_names": [f"class{i}" for i in range(10)],
    "pretrained_cfg": {"input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                       "interpolation": "bilinear", "crop_pct": 1.0, "num_classes": 10, "tag": "dynmix_cifar10",
                       "license": "apache-2.0"},
}
RESULTS = {
    "model": "resnet18",
    "dataset": {"name": "CIFAR-10", "repo": "uoft-cs/cifar10", "split": "test",
                "provenance": "CIFAR-10 rebuilt from a JPEG copy"},
    "aug": "dynmix-m5-wlinear", "jsd": True, "jsd_weight": 12.0, "num_mixes": 2, "epochs": 100, "batch_size": 128,
    "lr": 0.1, "optimizer": "sgd", "scheduler": "cosine", "weight_decay": 0.0005, "seed": 3, "world_size": 2,
    "mixed_precision": "bf16", "metrics": {"clean_top1": 94.25, "train_loss": 0.6123},
    "versions": {"torch": "2.14.1", "timm": "1.0.31"}, "elapsed_s": 7384.0,
}


def _report(tmp_path: Path, name: str = "c10c", **over) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "per_corruption.png")
    data = {"benchmark": "cifar10-c", "clean_error": 5.75, "corruption_error": 11.21, "rms_calibration_error": 3.4,
            "per_corruption": {"gaussian_noise": 18.5, "fog": 9.25}, "plots": ["per_corruption.png"],
            "future_key": {"ignored": True}}
    data.update(over)
    (folder / "report.json").write_text(json.dumps(data))
    return folder


# ---- evaluation reports ------------------------------------------------------------------------------------------
def test_load_eval_report(tmp_path):
    rep = load_eval_report(_report(tmp_path))
    assert rep.benchmark == "cifar10-c" and rep.dataset_name == "CIFAR-10-C" and rep.dataset_type == "cifar10-c"
    assert rep.corruption_error == 11.21 and rep.mce is None and rep.rms_calibration_error == 3.4
    assert rep.per_corruption == (("gaussian_noise", 18.5), ("fog", 9.25))
    assert [p.name for p in rep.plots] == ["per_corruption.png"]
    # the report.json file itself works too, and a dataset block overrides the names
    # one table of display names for reports and cards (the card's lacked the -P and clean sets)
    assert EvalReport.from_dict({"benchmark": "cifar10-p", "mce": 1.0}).dataset_name == "CIFAR-10-P"
    rep2 = EvalReport.from_dict({"benchmark": "imagenet-c", "mce": 112.5,
                                 "dataset": {"name": "ImageNet-C (val)", "type": "org/imagenet-c", "split": "val"}})
    assert (rep2.dataset_name, rep2.dataset_type, rep2.dataset_split, rep2.mce) == \
        ("ImageNet-C (val)", "org/imagenet-c", "val", 112.5)


@pytest.mark.parametrize("change, error, match", [
    ({"benchmark": ""}, ValueError, "'benchmark' must be a non-empty string"),
    ({"clean_error": None, "corruption_error": None, "rms_calibration_error": None}, ValueError, "at least one of"),
    ({"corruption_error": 111.0}, ValueError, r"'corruption_error' must be a percentage in \[0, 100\]"),
    ({"mce": -1}, ValueError, "must be a percentage in >= 0"),
    ({"clean_error": "5%"}, TypeError, "'clean_error' must be a finite number"),
    ({"per_corruption": {"fog": 0.5e3}}, ValueError, r"per_corruption\['fog'\] must be a percentage"),
    ({"per_corruption": [1, 2]}, TypeError, "'per_corruption' must map"),
    ({"plots": ["missing.png"]}, FileNotFoundError, "plot 'missing.png' is listed but"),
    ({"plots": ["../x.png"]}, ValueError, "plots must be relative .png file names"),
    ({"plots": "per_corruption.png"}, TypeError, "'plots' must be a list"),
])
def test_eval_report_errors(tmp_path, change, error, match):
    with pytest.raises(error, match=match):
        load_eval_report(_report(tmp_path, **change))


def test_eval_report_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation report at"):
        load_eval_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_eval_report(tmp_path)
    with pytest.raises(TypeError, match="must be a JSON object"):
        EvalReport.from_dict([1, 2])
    with pytest.raises(ValueError, match="two evaluation reports for the same benchmark: cifar10-c"):
        render_card(CONFIG, eval_reports=[_report(tmp_path, "a"), _report(tmp_path, "b")])


# ---- rendering -------------------------------------------------------------------------------------------------
def test_full_card(tmp_path):
    card = render_card(CONFIG, results=RESULTS, eval_reports=[_report(tmp_path)], repo_id="org/wrn.dynmix")
    text = str(card)
    # body: config string (canonical) and weight mode, recipe, provenance, results, usage, citations
    assert "dynmix-m5-d2-p0.5-a1-wlinear-b0-n2-ocifar" in text and "Weight mode **`linear`**" in text
    assert "linear-only ablation" in text
    for row in ("| Epochs | 100 |", "| Batch size | 128 |", "| Processes | 2 |", "| Mixed precision | bf16 |",
                "| Learning rate | 0.1 |", "| Weight decay | 0.0005 |", "| Seed | 3 |",
                "| Training time | 2 h 03 min |", "| JSD consistency loss | on, weight 12, 3 views |",
                "| Clean top-1 accuracy (%) | 94.25 |"):
        assert row in text, row
    assert "Provenance: CIFAR-10 rebuilt from a JPEG copy" in text
    assert "[uoft-cs/cifar10](https://huggingface.co/datasets/uoft-cs/cifar10)" in text
    assert "| CIFAR-10-C (`cifar10-c`) | 5.75 | 11.21 | - | 3.40 |" in text
    assert "| gaussian_noise | 18.50 |" in text and "(plots/cifar10c_per_corruption.png)" in text
    assert 'timm.create_model("hf-hub:org/wrn.dynmix", pretrained=True)' in text
    assert 'AutoModelForImageClassification.from_pretrained("org/wrn.dynmix")' in text
    assert "import timm_dynmix" not in text.split("## Usage")[1].split("With transformers")[0]  # resnet18 is timm's
    assert "@inproceedings{hendrycks2020augmix" in text and "@inproceedings{zhang2018mixup" in text
    assert "A Dynamic Mixup Approach Towards Improved Robustness of Classifiers" in text
    assert "torch 2.14.1, timm 1.0.31." in text
    # front matter
    data = card.data
    assert data.library_name == "timm" and data.license == "apache-2.0" and data.datasets == ["uoft-cs/cifar10"]
    assert data.tags == list(CARD_TAGS) and data.pipeline_tag == "image-classification"
    assert data.model_name == "resnet18.dynmix_cifar10"
    got = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert got == {("CIFAR-10", "accuracy"): 94.25, ("CIFAR-10-C", "error"): 5.75,
                   ("CIFAR-10-C", "corruption_error"): 11.21, ("CIFAR-10-C", "rms_calibration_error"): 3.4}


def test_card_parses_back_and_validates(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    path = write_card(folder, results=RESULTS, eval_reports=[_report(tmp_path)])
    loaded = ModelCard.load(path)
    assert "model-index" in loaded.data.to_dict()
    expected = card_data(CONFIG, RESULTS, [load_eval_report(tmp_path / "c10c")]).eval_results
    assert [r.__dict__ for r in loaded.data.eval_results] == [r.__dict__ for r in expected]
    assert isinstance(loaded.data.eval_results[0], EvalResult)
    assert validate_card(path).data.model_name == "resnet18.dynmix_cifar10"
    assert (folder / "plots" / "cifar10c_per_corruption.png").is_file()
    assert REPO_ID_PLACEHOLDER in path.read_text()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_card_degrades_gracefully():
    text = str(render_card({"architecture": "resnet18", "num_classes": 3}))
    assert "## Training recipe" not in text and "## Results" not in text and "## Augmentation" not in text
    assert "## Usage" in text and "## Citation" in text and "| Classes | 3 |" in text
    meta = ModelCard(text).data
    assert meta.eval_results is None and meta.library_name == "timm" and meta.datasets is None
    # partial results: only what is there
    part = str(render_card(CONFIG, results={"aug": "dynmix", "epochs": 5, "metrics": {"clean_top1": 50.0}}))
    assert "| Epochs | 5 |" in part and "| Batch size |" not in part and "dynmix-m3-d2-p0.5-a1-wpair" in part
    assert "## Training data" not in part
    assert ModelCard(part).data.eval_results is None  # no dataset named: no model-index entry for top-1


def test_card_baseline_and_local_dataset():
    results = {"aug": "augmix-m3-w3", "jsd": False, "dataset": {"name": "digits", "path": "/home/someone/data/digits"}}
    card = render_card(CONFIG, results=results)
    text = str(card)
    assert "trained **without DynMix**, with `augmix-m3-w3`" in text and "| JSD consistency loss | off |" in text
    assert "local copy `digits`" in text and "/home/someone" not in text  # never publish a local path
    assert "augmix" in card.data.tags and card.data.datasets is None
    for aug, name in (("augmix_official-s3-w3-d0-a1", "augmix"), ("random-autoaugment", "random-autoaugment")):
        tags = render_card(CONFIG, results={"aug": aug, "aug_name": name, "jsd": False}).data.tags
        assert name in tags and not any(t.startswith(("augmixofficial", "random")) and t != name for t in tags)


def test_card_mentions_import_for_timm_dynmix_architectures(monkeypatch):
    monkeypatch.setattr("timm_dynmix.hub.card.requires_timm_dynmix", lambda arch: True)
    text = str(render_card(CONFIG))
    assert "**`import timm_dynmix` first.**" in text
    usage = text.split("## Usage")[1]
    assert usage.count("import timm_dynmix  # registers resnet18 in timm") == 2  # timm and transformers snippets


def test_card_errors(tmp_path):
    with pytest.raises(ValueError, match="config has no 'architecture'"):
        render_card({"num_classes": 3})
    with pytest.raises(TypeError, match=r"results\['metrics'\] must be a dict"):
        render_card(CONFIG, results={"metrics": [1]})
    with pytest.raises(FileNotFoundError, match=r"template .* does not exist"):
        render_card(CONFIG, template=tmp_path / "nope.j2")
    bad = tmp_path / "bad.md.j2"
    bad.write_text("---\n{{ card_data }}\n---\n{{ no_such_variable }}\n")
    with pytest.raises(Exception, match="no_such_variable"):  # StrictUndefined: typos fail loudly
        render_card(CONFIG, template=bad)
    with pytest.raises(FileNotFoundError, match=r"no config\.json in"):
        write_card(tmp_path)
    with pytest.raises(ValueError, match="must declare library_name 'timm'"):
        validate_card("---\nlibrary_name: transformers\nlicense: mit\n---\nhi\n")
    with pytest.raises(ValueError, match="lacks the tags"):
        validate_card("---\nlibrary_name: timm\nlicense: mit\ntags: [timm]\n---\nhi\n")
    with pytest.raises(ValueError, match="does not parse"):
        validate_card("---\nlibrary_name: timm\nmodel-index: [{name: x, results: [{}]}]\n---\nhi\n")
    with pytest.raises(ValueError, match="does not parse: while parsing a flow sequence"):
        validate_card("---\nlibrary_name: [oops\n---\nhi\n")


def test_custom_template(tmp_path):
    tpl = tmp_path / "mine.md.j2"
    tpl.write_text("---\n{{ card_data }}\n---\n# {{ model_name }} for {{ repo_id }}\n")
    text = str(render_card(CONFIG, template=tpl, repo_id="me/m"))
    assert text.endswith("# resnet18.dynmix_cifar10 for me/m\n")


# ---- CLI ---------------------------------------------------------------------------------------------------------
def test_card_cli(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "results.json").write_text(json.dumps(RESULTS))
    assert main(["card", str(folder), "--eval-report", str(_report(tmp_path)), "--repo-id", "org/m"]) == 0
    assert "wrote" in capsys.readouterr().out
    card = validate_card(folder / "README.md")
    assert "hf-hub:org/m" in str(card) and len(card.data.eval_results) == 4
    # re-render without reports: plots/ goes away with the section
    assert main(["card", str(folder)]) == 0
    assert not (folder / "plots").exists() and len(validate_card(folder / "README.md").data.eval_results) == 1
    (folder / "results.json").unlink()
    assert main(["card", str(folder)]) == 0
    assert "no results.json" in capsys.readouterr().out
    assert main(["card", str(tmp_path / "absent")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["card", str(folder), "--results", str(tmp_path / "r.json")]) == 2
    assert "results file" in capsys.readouterr().err


# ---- packaging: the templates ship in the wheel --------------------------------------------------------------------
def test_templates_found_in_checkout_and_in_wheel(tmp_path):
    assert templates_dir() == ROOT / "timm_dynmix" / "hub" / "templates"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "timm_dynmix", src / "timm_dynmix", ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w",
                          str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("timm_dynmix-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    assert "timm_dynmix/hub/templates/modelcard.md.j2" in names
    sources = {f"timm_dynmix/{p.relative_to(ROOT / 'timm_dynmix').as_posix()}"
               for p in (ROOT / "timm_dynmix").rglob("*.py")}
    assert sources <= names, f"modules missing from the wheel (list new subpackages in pyproject): {sources - names}"
    site = tmp_path / "site"
    code = "from timm_dynmix.hub.card import templates_dir; print(templates_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0 and out.stdout.strip() == str(site / "timm_dynmix" / "hub" / "templates"), out.stderr
