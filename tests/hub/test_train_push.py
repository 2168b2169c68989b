"""examples/train.py --push-to-hub -> timm.create_model("hf-hub:...") in a fresh process, against a loopback Hub."""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from conftest import ROOT
from hub_server import LoopbackHub

FAKE_TOKEN = "hf_FAKEtrainpushTOKEN0123456789abcdefXYZ"
TRAIN = [sys.executable, str(ROOT / "examples" / "train.py"), "--max-train-samples", "16", "--max-eval-samples", "32",
         "--batch-size", "16", "--epochs", "1", "--num-workers", "0"]
_LOGITS = """
import sys, numpy as np, torch, timm, timm_dynmix
model = timm.create_model(sys.argv[1], pretrained=True).eval()
with torch.no_grad():
    np.save(sys.argv[3], model(torch.from_numpy(np.load(sys.argv[2]))).numpy())
"""


def _env(**extra):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    base.update(NO_PROXY="127.0.0.1,localhost", HF_HUB_OFFLINE="0", PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    base.update(extra)
    return base


def _logits(name, probe, out, env):
    proc = subprocess.run([sys.executable, "-c", _LOGITS, name, str(probe), str(out)], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


def test_train_push_then_download_in_a_fresh_process(tmp_path):
    repo = "org/resnet8_cifar.dynmix_digits"
    out = tmp_path / "run"
    probe = tmp_path / "probe.npy"
    np.save(probe, torch.randn(4, 3, 32, 32).numpy())
    with LoopbackHub() as hub:
        env = _env(HF_ENDPOINT=hub.url, HF_TOKEN=FAKE_TOKEN, HF_HOME=str(tmp_path / "home"))
        proc = subprocess.run([*TRAIN, "--output-dir", str(out), "--push-to-hub", repo], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(hub.commits) == 1 and "model.safetensors" in hub.commits[0]["paths"]
        card = hub.files(repo)["README.md"].decode()
        assert "model-index" in card and f"hf-hub:{repo}" in card and "import timm_dynmix" in card
        fresh = _env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "empty-home"))  # empty cache, no token
        remote = _logits(f"hf-hub:{repo}", probe, tmp_path / "remote.npy", fresh)
    local = _logits(f"local-dir:{out}", probe, tmp_path / "local.npy", _env(HF_HUB_OFFLINE="1"))
    assert np.array_equal(remote, local)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".yaml", ".txt", ".log"):
            assert FAKE_TOKEN not in path.read_text(errors="ignore"), path
    assert FAKE_TOKEN not in proc.stdout + proc.stderr


def test_failed_push_keeps_the_training_outputs(tmp_path):
    with LoopbackHub(fail_status=500) as hub:
        env = _env(HF_ENDPOINT=hub.url, HF_TOKEN=FAKE_TOKEN, HF_HOME=str(tmp_path / "home"))
        proc = subprocess.run([*TRAIN, "--output-dir", str(tmp_path / "run"), "--push-to-hub", "org/x"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "push to the Hub failed; every local file is kept" in proc.stderr
    assert "timm-dynmix push" in proc.stderr and FAKE_TOKEN not in proc.stdout + proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 1
    for name in ("config.json", "model.safetensors", "README.md", "config.yaml"):
        assert (tmp_path / "run" / name).is_file()


def test_bad_repo_id_is_refused_before_training(tmp_path):
    proc = subprocess.run([*TRAIN, "--output-dir", str(tmp_path / "run"), "--push-to-hub", "not a repo!"],
                          env=_env(HF_HUB_OFFLINE="1"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "invalid Hub repo id" in proc.stderr
    assert not (tmp_path / "run").exists()
