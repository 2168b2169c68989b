"""Hub support: save_pretrained (timm / transformers loadable, atomic), push_to_hub and create_model, tested against
a loopback Hub (tests/hub_server.py) on 127.0.0.1; no request leaves the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
import timm
import torch
import torch.nn.functional as F
from hub_server import LoopbackHub
from huggingface_hub import constants
from PIL import Image

from timm_dynmix import HubError, create_model, push_to_hub, save_pretrained
from timm_dynmix.cli import main
from timm_dynmix.hub import check_repo_id, hub_config, register_architectures, requires_timm_dynmix
from timm_dynmix.hub.card import REPO_ID_PLACEHOLDER, validate_card

ROOT = Path(__file__).resolve().parents[2]
FAKE_TOKEN = "hf_TimmDynmixFakeToken0123456789abcdefXYZ"  # recognizable: must never be written anywhere
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RESULTS = {
    "model": "test_efficientnet", "aug": "dynmix-m3-windep", "jsd": True, "jsd_weight": 12.0, "num_mixes": 2,
    "dataset": {"name": "CIFAR-10", "repo": "uoft-cs/cifar10", "split": "test",
                "provenance": "CIFAR-10 rebuilt from a JPEG copy"},
    "epochs": 1, "batch_size": 16, "lr": 0.05, "optimizer": "sgd", "seed": 0, "metrics": {"clean_top1": 12.5},
}
MODEL_FILES = ["README.md", "config.json", "model.safetensors"]


@pytest.fixture(scope="module")
def trained(real_images):
    """A tiny timm model after one real SGD step on 32x32 images (weights, classifier and BN stats all moved)."""
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=10, pretrained_cfg_overlay=dict(
        input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_pct=1.0,
        interpolation="bilinear"))
    x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
                     for im in real_images[:16]])
    x = (x - 0.5) / 0.25
    y = torch.arange(16) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    model.eval()
    probe = x[:4].clone()
    with torch.no_grad():
        ref = model(probe)
    return model, probe, ref


def _eval_report(root: Path) -> Path:
    folder = root / "eval-cifar10-c"
    folder.mkdir(parents=True)
    Image.new("RGB", (48, 32), (20, 120, 200)).save(folder / "errors.png")
    (folder / "report.json").write_text(json.dumps({
        "benchmark": "cifar10-c", "clean_error": 87.5, "corruption_error": 88.9, "rms_calibration_error": 40.1,
        "per_corruption": {"gaussian_noise": 90.0, "fog": 87.8}, "plots": ["errors.png"]}))
    return folder


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    return save_pretrained(trained[0], root / "model", results=RESULTS, label_names=LABELS,
                           eval_reports=[_eval_report(root)])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_no_token(*texts: str, root: Path | None = None) -> None:
    for text in texts:
        assert FAKE_TOKEN not in text
    if root is not None:
        for p in root.rglob("*"):
            if p.is_file():
                assert FAKE_TOKEN.encode() not in p.read_bytes(), f"token written to {p}"


# ---- save_pretrained -------------------------------------------------------------------------------------------
def test_saved_folder_contents(saved):
    assert sorted(p.name for p in saved.iterdir()) == sorted([*MODEL_FILES, "plots"])
    assert [p.name for p in (saved / "plots").iterdir()] == ["cifar10c_errors.png"]
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["architecture"] == "test_efficientnet" and cfg["num_classes"] == 10 and cfg["label_names"] == LABELS
    assert cfg["model_args"] == {"in_chans": 3, "global_pool": "avg"}  # no num_classes: transformers passes it
    pc = cfg["pretrained_cfg"]
    assert (pc["input_size"], pc["mean"], pc["std"]) == ([3, 32, 32], [0.5] * 3, [0.25] * 3)
    assert (pc["crop_pct"], pc["interpolation"], pc["num_classes"]) == (1.0, "bilinear", 10)
    assert (pc["tag"], pc["license"]) == ("dynmix_cifar10", "apache-2.0")
    assert pc["paper_name"] == "A Dynamic Mixup Approach Towards Improved Robustness of Classifiers"
    text = (saved / "config.json").read_text()
    for leak in ("hf_hub_id", "r160_in1k", "timm/", '"url"', "pool_size\": [", "source"):
        assert leak not in text, leak  # nothing of the architecture's default ImageNet weights
    with safetensors.safe_open(saved / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"} and "classifier.weight" in f.keys()
    card = validate_card(saved / "README.md")
    assert card.data.model_name == "test_efficientnet.dynmix_cifar10" and len(card.data.eval_results) == 4


def test_folder_loads_with_timm_identically(trained, saved):
    _, probe, ref = trained
    model = timm.create_model(f"local-dir:{saved}", pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(model(probe), ref)  # the classifier was loaded, not re-initialized
    assert tuple(model.pretrained_cfg["input_size"]) == (3, 32, 32)
    assert tuple(model.pretrained_cfg["std"]) == (0.25,) * 3
    assert list(model.pretrained_cfg["label_names"]) == LABELS


def test_folder_loads_with_transformers_identically(trained, saved):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    _, probe, ref = trained
    model = AutoModelForImageClassification.from_pretrained(saved).eval()
    with torch.no_grad():
        assert torch.equal(model(pixel_values=probe).logits, ref)
    assert model.config.num_labels == 10 and model.config.id2label[3] == "cat"
    proc = AutoImageProcessor.from_pretrained(saved)
    assert proc.data_config["input_size"] == (3, 32, 32) and proc.data_config["mean"] == (0.5, 0.5, 0.5)


def test_resave_of_a_loaded_model_keeps_its_config(saved):
    loaded = timm.create_model(f"local-dir:{saved}", pretrained=True)
    first = json.loads((saved / "config.json").read_text())
    again = hub_config(loaded, label_names=LABELS)
    assert again["pretrained_cfg"].pop("description") != first["pretrained_cfg"].pop("description")  # no results
    first["pretrained_cfg"].pop("paper_name")
    assert again == first  # the tag is ours (timm does not know it), the input settings are the saved ones


def test_defaults_of_the_architecture_do_not_leak(tmp_path):
    model = timm.create_model("resnet10t", num_classes=4, pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    cfg = hub_config(model)
    pc = cfg["pretrained_cfg"]
    assert "test_input_size" not in pc and "test_crop_pct" not in pc  # timm's ImageNet test-time sizes
    assert "origin_url" not in pc and "tag" not in pc and pc["license"] == "apache-2.0"
    assert pc["input_size"] == [3, 64, 64]
    cfg = hub_config(model, data_config={"test_input_size": (3, 72, 72), "mean": (0.1, 0.2, 0.3)}, tag="mine",
                     license="mit")
    pc = cfg["pretrained_cfg"]
    assert pc["test_input_size"] == [3, 72, 72] and pc["mean"] == [0.1, 0.2, 0.3]
    assert (pc["tag"], pc["license"]) == ("mine", "mit")


def test_save_into_output_dir_keeps_other_files(trained, tmp_path):
    model = trained[0]
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "results.json").write_text("{}")
    (out / "checkpoints" / "epoch_1.bin").write_bytes(b"state")
    save_pretrained(model, out, results=RESULTS, eval_reports=[_eval_report(tmp_path)])
    assert (out / "plots" / "cifar10c_errors.png").is_file()
    twin = timm.create_model("test_efficientnet", num_classes=10,
                             pretrained_cfg_overlay=dict(input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3))
    save_pretrained(twin, out, results=RESULTS)  # a second save replaces the model files, and the stale plots
    assert sorted(p.name for p in out.iterdir()) == sorted([*MODEL_FILES, "checkpoints", "results.json"])
    assert (out / "checkpoints" / "epoch_1.bin").read_bytes() == b"state"
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert torch.equal(loaded.classifier.weight, twin.classifier.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval-cifar10-c", "run"]  # no staging folder left


def test_failed_save_leaves_the_old_folder_intact(trained, tmp_path, monkeypatch):
    out = save_pretrained(trained[0], tmp_path / "m", results=RESULTS)
    before = _snapshot(out)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("timm_dynmix.hub.save.write_card", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained(trained[0], out, results={**RESULTS, "epochs": 2})
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_unwraps_and_skips_card(trained, tmp_path):
    compiled = torch.compile(trained[0])  # an OptimizedModule: its state_dict keys carry "_orig_mod."
    out = save_pretrained(compiled, tmp_path / "m", card=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    with safetensors.safe_open(out / "model.safetensors", "pt") as f:
        assert not [k for k in f.keys() if k.startswith("_orig_mod")]


def test_save_errors(trained, tmp_path):
    model = trained[0]
    with pytest.raises(ValueError, match="label_names has 3 names for a model with 10 classes"):
        save_pretrained(model, tmp_path / "a", label_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="label_names must be a list of strings"):
        save_pretrained(model, tmp_path / "a", label_names="abc")
    with pytest.raises(TypeError, match="expected a timm model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "a")
    with pytest.raises(ValueError, match=r"unknown data_config keys \['size'\]"):
        save_pretrained(model, tmp_path / "a", data_config={"size": 3})
    with pytest.raises(ValueError, match=r"mean \[0\.5\] has 1 values for 3 input channels"):
        save_pretrained(model, tmp_path / "a", data_config={"mean": (0.5,)})
    with pytest.raises(ValueError, match="tag must be a non-empty string without"):
        save_pretrained(model, tmp_path / "a", tag="a.b")
    with pytest.raises(ValueError, match="has no classifier"):
        save_pretrained(timm.create_model("test_efficientnet", num_classes=0), tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        save_pretrained(model, tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing was written


# ---- create_model ------------------------------------------------------------------------------------------------
def test_create_model_defers_to_timm():
    register_architectures()
    register_architectures()  # idempotent
    model = create_model("test_efficientnet", num_classes=3)
    assert model.num_classes == 3 and not requires_timm_dynmix("test_efficientnet")
    with pytest.raises(TypeError, match="model_name must be a non-empty string"):
        create_model(None)


def test_create_model_offline_without_cache_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.monotonic()
    with pytest.raises(HubError, match=r"cannot load 'hf-hub:org/robust-net' from the Hugging Face Hub .*: offline "
                                       r"mode is on \(HF_HUB_OFFLINE=1\) and the files are not in the local cache"):
        create_model("hf-hub:org/robust-net", pretrained=True)
    assert time.monotonic() - start < 5


def test_create_model_unknown_architecture(saved, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    cfg = json.loads((saved / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "architecture": "wrn_from_the_future"}))
    with pytest.raises(RuntimeError, match=r"timm .* has no architecture 'wrn_from_the_future' \(needed by "
                                           r"'local-dir:.*'\); the timm-dynmix architectures are registered"):
        create_model(f"local-dir:{folder}", pretrained=True)


# ---- push_to_hub (in process, against the loopback Hub) ---------------------------------------------------------
@pytest.fixture
def hub_client(monkeypatch, tmp_path):
    """Let huggingface_hub talk to a loopback Hub with the fake token (and never to a real login)."""
    from huggingface_hub.utils._http import close_session

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    close_session()

    def point_to(url: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", url)

    yield point_to
    close_session()


def test_push_to_branch_and_pr_one_commit_each(saved, hub_client, caplog, capsys):
    with LoopbackHub() as hub:
        hub_client(hub.url)
        info = push_to_hub(saved, "org/tiny", revision="dev")
        assert str(info).startswith(f"{hub.url}/org/tiny/commit/")
        files = hub.files("org/tiny", "dev")
        assert sorted(files) == sorted([".gitattributes", *MODEL_FILES, "plots/cifar10c_errors.png"])
        assert files["model.safetensors"] == (saved / "model.safetensors").read_bytes()
        assert sorted(hub.files("org/tiny", "main")) == [".gitattributes"]  # the branch got the commit
        readme = files["README.md"].decode()
        assert "hf-hub:org/tiny" in readme and REPO_ID_PLACEHOLDER not in readme
        assert REPO_ID_PLACEHOLDER in (saved / "README.md").read_text()  # the local card is untouched
        pr = push_to_hub(saved, "org/tiny", create_pr=True, commit_message="Robust weights")
        assert pr.pr_url == f"{hub.url}/org/tiny/discussions/1"
        assert sorted(hub.files("org/tiny", "refs/pr/1")) == sorted(files)
        assert [(c["ref"], len(c["paths"])) for c in hub.commits] == [("dev", 4), ("refs/pr/1", 4)]
        assert hub.commits[1]["summary"] == "Robust weights"
        assert f"Bearer {FAKE_TOKEN}" in hub.auth_headers  # the token was used, from the environment
        out = capsys.readouterr()
        _assert_no_token(caplog.text, out.out, out.err, *(v.decode("latin-1") for v in files.values()))


@pytest.mark.parametrize("case, match", [
    ("down", r"cannot connect to the Hub \(ConnectError"),
    ("refused", r"permission denied \(HTTP 403: You don't have the rights to create a model under the namespace"),
    ("error500", r"the Hub answered with a server error \(HTTP 500"),
])
def test_push_failures_are_one_clear_error(saved, hub_client, caplog, capsys, case, match):
    before = _snapshot(saved)
    hub = LoopbackHub(allow_create=case != "refused", fail_status=500 if case == "error500" else None).start()
    url = hub.url
    if case == "down":
        hub.stop()
    hub_client(url)
    try:
        start = time.monotonic()
        with pytest.raises(HubError, match=match) as err:
            push_to_hub(saved, "org/tiny")
        assert time.monotonic() - start < 10
        assert str(err.value).startswith(f"cannot push {saved} to {url}/org/tiny: ")
        assert str(err.value).endswith(f"Nothing was changed in {saved}.")
        assert "org/tiny" not in hub.repos
        # the CLI gives the same message once, with exit code 2
        assert main(["push", str(saved), "org/tiny"]) == 2
        cli = capsys.readouterr()
        assert cli.err.count("timm-dynmix push: error: cannot push") == 1 and "Traceback" not in cli.err
    finally:
        hub.stop()
    assert _snapshot(saved) == before
    _assert_no_token(str(err.value), caplog.text, cli.out, cli.err)


def test_push_refuses_before_any_request(saved, hub_client, monkeypatch, tmp_path):
    with LoopbackHub() as hub:
        hub_client(hub.url)
        with pytest.raises(ValueError, match="invalid Hub repo id 'not a/repo id'"):
            push_to_hub(saved, "not a/repo id")
        with pytest.raises(TypeError, match="repo_id must be a string"):
            check_repo_id(None)
        with pytest.raises(HubError, match=r"model.safetensors missing; save the model first"):
            push_to_hub(tmp_path, "org/tiny")
        broken = tmp_path / "broken"
        broken.mkdir()
        for name in ("config.json", "model.safetensors"):
            (broken / name).write_bytes((saved / name).read_bytes())
        (broken / "README.md").write_text("---\nlibrary_name: [oops\n---\n")
        with pytest.raises(HubError, match=r"the model card .* is invalid .*timm-dynmix card"):
            push_to_hub(broken, "org/tiny")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(HubError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\); unset it to push"):
            push_to_hub(saved, "org/tiny")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_TOKEN")
        with pytest.raises(HubError, match="no Hugging Face token; set HF_TOKEN or log in with `hf auth login`"):
            push_to_hub(saved, "org/tiny")
        assert [r for r in hub.log if r[1] != "/api/agent-harnesses"] == []


# ---- the real round trip: CLI push, then a fresh process downloads into an empty cache --------------------------
_DOWNLOAD = r"""
import json, sys, time
import numpy as np, timm, torch
from huggingface_hub import constants
import timm_dynmix

repo, probe, out = sys.argv[1:4]
x = torch.from_numpy(np.load(probe))
model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()  # plain timm
with torch.no_grad():
    logits = model(x)
np.save(out, logits.numpy())
errors = {}
for name in ("hf-hub:org/does-not-exist", "hf-hub:org/gated", f"hf-hub:{repo}@no-such-branch"):
    start = time.monotonic()
    try:
        timm_dynmix.create_model(name, pretrained=True)
        errors[name] = None
    except timm_dynmix.HubError as e:
        errors[name] = [str(e), time.monotonic() - start]
constants.HF_HUB_OFFLINE = True  # from now on the cache alone must do
with torch.no_grad():
    cached = torch.equal(timm_dynmix.create_model(f"hf-hub:{repo}", pretrained=True).eval()(x), logits)
print(json.dumps({"errors": errors, "cached": cached, "input_size": model.pretrained_cfg["input_size"]}))
"""


@pytest.mark.slow
def test_round_trip_push_cli_then_download_in_fresh_process(trained, tmp_path):
    model, probe, ref = trained
    folder = save_pretrained(model, tmp_path / "out", results=RESULTS, label_names=LABELS,
                             eval_reports=[_eval_report(tmp_path)])
    repo = "org/test_efficientnet.dynmix_cifar10"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    base.update(HF_HUB_OFFLINE="0", NO_PROXY="127.0.0.1,localhost",
                PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with LoopbackHub() as hub:
        hub.add_repo("org/gated", {"config.json": b"{}"}, gated=True)
        env = dict(base, HF_ENDPOINT=hub.url, HF_TOKEN=FAKE_TOKEN, HF_HOME=str(tmp_path / "push-home"))
        push = subprocess.run([sys.executable, "-m", "timm_dynmix.cli", "push", str(folder), repo],
                              env=env, capture_output=True, text=True, timeout=120)
        assert push.returncode == 0, push.stderr[-3000:]
        assert f"pushed {folder} to {hub.url}/{repo}" in push.stdout
        assert [c["paths"] for c in hub.commits] == [sorted([*MODEL_FILES, "plots/cifar10c_errors.png"])]
        assert f"Bearer {FAKE_TOKEN}" in hub.auth_headers

        card = validate_card(hub.files(repo)["README.md"].decode())  # the pushed README parses, with model-index
        assert f'"hf-hub:{repo}"' in str(card) and "model-index" in card.data.to_dict()
        assert {r.metric_type for r in card.data.eval_results} == {"accuracy", "error", "corruption_error",
                                                                   "rms_calibration_error"}

        np.save(tmp_path / "probe.npy", probe.numpy())
        env = dict(base, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "empty-home"))  # empty cache, no token
        dl = subprocess.run([sys.executable, "-c", _DOWNLOAD, repo, str(tmp_path / "probe.npy"),
                             str(tmp_path / "logits.npy")], env=env, capture_output=True, text=True, timeout=180)
        assert dl.returncode == 0, dl.stderr[-3000:]
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "logits.npy")), ref)
    report = json.loads(dl.stdout.strip().splitlines()[-1])
    assert report["cached"] is True and report["input_size"] == [3, 32, 32]
    errors = report["errors"]
    assert "repository not found" in errors["hf-hub:org/does-not-exist"][0]
    assert "the repository is gated" in errors["hf-hub:org/gated"][0]
    assert "revision (branch, tag or commit) does not exist" in errors[f"hf-hub:{repo}@no-such-branch"][0]
    assert all(e[1] < 10 for e in errors.values())
    assert any((tmp_path / "empty-home" / "hub").glob("models--org--test_efficientnet.dynmix_cifar10"))
    _assert_no_token(push.stdout, push.stderr, dl.stdout, dl.stderr, root=tmp_path)
