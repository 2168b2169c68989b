"""Study integrity: the network a recipe trains does not depend on the data path or the augmentation.

Round 2's study froze FastNet-CIFAR's whitened stem on the in-memory path only, so its AugMix arms (DataLoader path)
trained another network than its DynMix arms, and nothing recorded it. These tests pin the fix: the stem is an
explicit option applied the same way on every path, and every run records its resolved configuration.
"""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

import timm_dynmix.train.loop as train_loop
from timm_dynmix.train import config_from_args, train
from timm_dynmix.train.loop import resolve_stem

RECIPE = ROOT / "examples" / "configs" / "cifar10_fast_cpu.yaml"
# the fast recipe on the embedded digits (offline), one optimizer step
ONE_STEP = {"dataset": "digits", "max_train_samples": 128, "max_eval_samples": 32, "batch_size": 32, "max_steps": 1,
            "epochs": 1, "num_workers": 0, "warmup_epochs": 0}


def _one_step(tmp_path, aug: str, stem: str | None, monkeypatch=None, **extra) -> tuple[dict, dict, dict]:
    """Results, final weights and the weights right after initialisation of one step of the fast recipe."""
    out = tmp_path / f"{aug}-{stem}-{'-'.join(map(str, extra.values()))}"
    cfg = config_from_args({"config": str(RECIPE), **ONE_STEP, "aug": aug, "output_dir": str(out),
                            **({"stem": stem} if stem else {}), **extra})
    initial = {}
    if monkeypatch is not None:
        real = train_loop.init_model

        def spy(model, *args, **kwargs):
            model = real(model, *args, **kwargs)
            initial.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            return model

        monkeypatch.setattr(train_loop, "init_model", spy)
    results = train(cfg)
    return results, load_file(out / "model.safetensors"), initial


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["whitened", None])
def test_one_network_whatever_the_augmentation_and_data_path(tmp_path, monkeypatch, stem):
    """--aug none and dynmix (and augmix) run on the in-memory path, augmix with --aug-device loader in DataLoader
    workers: from one seed the initial networks are identical, after one step the stems agree (exactly when frozen)
    and the parameter sets are equal."""
    runs = {"none": _one_step(tmp_path, "none", stem, monkeypatch),
            "dynmix": _one_step(tmp_path, "dynmix", stem, monkeypatch),
            "augmix": _one_step(tmp_path, "augmix", stem, monkeypatch, aug_device="loader")}
    paths = {aug: r["resolved"]["data_path"] for aug, (r, _, _) in runs.items()}
    assert paths == {"none": "memory", "dynmix": "memory", "augmix": "loader"}  # the paths do differ
    resolved = {aug: r["resolved"] for aug, (r, _, _) in runs.items()}
    assert {r["stem"] for r in resolved.values()} == {stem or "learned"}
    assert len({r["trainable_params"] for r in resolved.values()}) == 1  # the same parameters train
    weights = {aug: w for aug, (_, w, _) in runs.items()}
    initial = {aug: w0 for aug, (_, _, w0) in runs.items()}
    for aug in ("dynmix", "augmix"):  # the same network before the first step, whatever the path
        assert initial[aug].keys() == initial["none"].keys()
        assert all(torch.equal(initial[aug][k], initial["none"][k]) for k in initial["none"]), aug
    keys = {aug: {k: tuple(v.shape) for k, v in w.items()} for aug, w in weights.items()}
    assert keys["none"] == keys["dynmix"] == keys["augmix"]
    ref = weights["none"]["features.0.weight"].float()
    for aug in ("dynmix", "augmix"):
        w = weights[aug]["features.0.weight"].float()
        if stem == "whitened":
            assert torch.equal(w, ref), aug  # frozen, and computed from the same images on both paths
        else:  # learned: the same initial stem (above), then one step on different views
            assert not torch.equal(w, ref), aug
    if stem == "whitened":
        frozen = resolved["none"]["params"] - resolved["none"]["trainable_params"]
        assert frozen == ref.numel()  # exactly the stem's weights are frozen
    else:
        assert resolved["none"]["params"] == resolved["none"]["trainable_params"]


def test_resolved_configuration_is_recorded(tmp_path):
    results, _, _ = _one_step(tmp_path, "none", None)
    r = results["resolved"]
    for key in ("data_path", "stem", "mixed_precision", "channels_last", "model_ema", "views", "jsd_weight",
                "workers", "effective_lr", "aug_device", "global_batch_size", "crop_padding", "trainable_params"):
        assert key in r, key
    assert r["stem"] == "learned" and r["views"] == 1 and r["jsd"] is False and r["jsd_weight"] is None
    assert r["model_ema"] is True and r["model_ema_decay"] == 0.995 and r["effective_lr"] == 0.75
    card = (tmp_path / "none-None-" / "README.md").read_text()
    front = card.split("---")[1]
    assert "training_config:" in front and "stem: learned" in front and "data_path: memory" in front
    assert "output_dir" not in front  # local paths stay out of a card meant for the Hub


def test_stem_errors():
    import timm

    import timm_dynmix.models.cifar  # noqa: F401

    resnet = timm.create_model("resnet8_cifar", num_classes=10)
    fast = timm.create_model("fastnet_cifar", num_classes=10)
    cfg = config_from_args({"model": "resnet8_cifar", "stem": "whitened"})
    with pytest.raises(ValueError, match="--stem whitened needs a model with a data-dependent stem"):
        resolve_stem(resnet, cfg)
    with pytest.raises(ValueError, match="cannot be combined with --pretrained"):
        resolve_stem(fast, config_from_args({"model": "fastnet_cifar", "stem": "whitened", "pretrained": True}))
    assert resolve_stem(fast, config_from_args({"model": "fastnet_cifar"})) == "learned"
    assert resolve_stem(resnet, config_from_args({"model": "resnet8_cifar", "pretrained": True})) == "pretrained"
    with pytest.raises(ValueError, match="--stem must be 'learned' or 'whitened', got 'frozen'"):
        config_from_args({"stem": "frozen"}).validate()
