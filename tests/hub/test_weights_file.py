"""Broken weights files give one clear error naming the file (API and CLI); saved weights follow the user's umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from timm_dynmix import WeightsError, check_weights_file, create_model, save_pretrained
from timm_dynmix.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A saved ResNet-8 folder (timm's Hub format), created once; tests copy what they break."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "model"
    save_pretrained(create_model("resnet8_cifar", num_classes=10), folder, card=False)
    return folder


def _copy(saved: Path, dst: Path, weights: bytes | None = None) -> Path:
    dst.mkdir()
    for f in saved.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    if weights is not None:
        (dst / "model.safetensors").write_bytes(weights)
    return dst


def test_intact_weights_pass_and_load(saved):
    check_weights_file(saved / "model.safetensors")
    assert create_model(f"local-dir:{saved}", pretrained=True).num_classes == 10


@pytest.mark.parametrize("keep, what", [(0.5, "truncated: .* bytes, its header describes"),
                                        (4, "truncated: 4 bytes, shorter than a safetensors header"),
                                        (0, "empty"),
                                        (20, "truncated or not a safetensors file")])
def test_truncated_weights_name_the_file(saved, tmp_path, keep, what):
    data = (saved / "model.safetensors").read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep  # a fraction of the file, or bytes
    folder = _copy(saved, tmp_path / "cut", data[:keep])
    weights = folder / "model.safetensors"
    with pytest.raises(WeightsError, match=f"weights file {weights} is {what}") as info:
        create_model(f"local-dir:{folder}", pretrained=True)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the message says it all


def test_corrupt_weights_name_the_file(saved, tmp_path):
    data = (saved / "model.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    garbled = data[:8] + b"{" * n + data[8 + n:]  # header length intact, header not JSON
    folder = _copy(saved, tmp_path / "garbled", garbled)
    with pytest.raises(WeightsError, match=r"model\.safetensors is corrupt: its safetensors header is not valid"):
        create_model(f"local-dir:{folder}", pretrained=True)
    longer = _copy(saved, tmp_path / "longer", data + b"\0" * 10)
    with pytest.raises(WeightsError, match=rf"is corrupt: {len(data) + 10} bytes, its header describes {len(data)}"):
        check_weights_file(longer / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        check_weights_file(tmp_path / "missing.safetensors")


def test_truncated_torch_checkpoint(saved, tmp_path):
    """A ``torch.save`` file cut short (its zip directory lost) is named too; intact ones pass."""
    from timm_dynmix.robustness.evaluate import load_eval_model

    path = tmp_path / "model.pth"
    torch.save(create_model("resnet8_cifar", num_classes=10).state_dict(), path)
    check_weights_file(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=f"weights file {path} is truncated or corrupt"):
        load_eval_model("resnet8_cifar", path)


def test_eval_cli_reports_broken_weights_in_one_line(saved, tmp_path, capsys):
    data = (saved / "model.safetensors").read_bytes()
    folder = _copy(saved, tmp_path / "cut", data[: len(data) // 3])
    rc = main(["eval", "--model", f"local-dir:{folder}", "--benchmark", "cifar10-c", "--data-dir", str(tmp_path),
               "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("timm-dynmix eval: error: weights file ") and "model.safetensors is truncated" in err[0]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_weights_follow_the_umask(tmp_path, umask):
    """model.safetensors, the other files and a new folder get the modes any new file gets (not 0600 / 0700)."""
    old = os.umask(umask)
    try:
        folder = save_pretrained(create_model("resnet8_cifar", num_classes=10), tmp_path / "model")
        (tmp_path / "probe").write_bytes(b"")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~umask
    for name in ("model.safetensors", "config.json", "README.md"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE(os.stat(tmp_path / "probe").st_mode) == 0o666 & ~umask
