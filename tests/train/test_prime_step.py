"""--aug prime in the trainer: parsed and checked before anything loads, run batched in the training step."""

from __future__ import annotations

import pytest

from timm_dynmix.train import TrainConfig, config_from_args, train


def test_prime_config_resolution():
    cfg = config_from_args({"aug": "prime"})
    cfg.validate()
    assert cfg.aug_name == "prime" and cfg.step_family == "prime" and cfg.has_views and cfg.use_jsd
    assert cfg.mixes == 2 and cfg.aug_string.startswith("prime-w3-d3-n2-j12-")
    one = config_from_args({"aug": "prime-n1"})
    assert one.mixes == 1 and "-n1-" in one.aug_string
    assert "-n1-" in config_from_args({"aug": "prime", "num_mixes": 1}).aug_string


@pytest.mark.parametrize("options, match", [
    ({"aug": "prime-q3"}, "q3"),  # an unknown key is named
    ({"aug": "prime", "aug_device": "loader"}, "no per-image PRIME"),
    ({"aug": "prime-j6"}, "sets the JSD weight j6 but --jsd-weight is 12"),
    ({"aug": "prime-n3", "num_mixes": 2}, "--num-mixes 2 contradicts n3"),
    ({"aug": "none", "jsd": True}, "augmix, dynmix or prime"),
])
def test_prime_refused_with_a_message(options, match):
    with pytest.raises(ValueError, match=match):
        config_from_args(options).validate()


def test_prime_runs_in_the_step(tmp_path):
    results = train(TrainConfig(aug="prime", max_train_samples=64, max_eval_samples=16, batch_size=16, max_steps=2,
                                epochs=1, num_workers=0, output_dir=str(tmp_path / "run")))
    r = results["resolved"]
    assert r["aug_device"] == "step" and r["data_path"] == "memory" and r["views"] == 3 and r["jsd"] is True
    assert r["aug_string"].startswith("prime-") and results["completed"] is False  # --max-steps 2 stops early
