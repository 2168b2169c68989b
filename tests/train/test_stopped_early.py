"""A run stopped by --max-steps is recorded, carded and pushed as what it is: not a finished run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from timm_dynmix.cli import main
from timm_dynmix.hub.summary import stopped_early
from timm_dynmix.train import TrainConfig, train
from timm_dynmix.train.loop import TrainProgress, run_status

TINY = {"max_train_samples": 64, "max_eval_samples": 32, "batch_size": 16, "num_workers": 0}  # 4 steps per epoch


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "out"
    res = train(TrainConfig(aug="none", epochs=2, max_steps=2, output_dir=str(out), **TINY))
    return out, res


def test_results_record_an_incomplete_run(smoke_run):
    out, res = smoke_run
    saved = json.loads((out / "results.json").read_text())
    for record in (res, saved):
        assert record["completed"] is False
        assert record["steps_completed"] == 2 and record["steps_planned"] == 8
        assert record["epochs_completed"] == 0.5 and record["epochs"] == 2
        assert record["stopped_early_reason"] == "--max-steps 2"


def test_card_says_it_stopped_early(smoke_run):
    out, _ = smoke_run
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert "stopped-early" in front["tags"]
    assert "model-index" not in front  # the partial run's accuracy is not claimed as the recipe's result
    text = "stopped early after 0.5 of 2 epochs (2 of 8 optimizer steps; --max-steps 2)"
    assert f"This training run {text}" in card and "**Not a fully trained model.**" in card
    assert "| Epochs | 2 planned, 0.5 done (stopped early) |" in card
    assert text in json.loads((out / "config.json").read_text())["pretrained_cfg"]["description"]


def test_push_refuses_an_incomplete_run(smoke_run, capsys):
    out, _ = smoke_run
    assert main(["push", str(out), "someone/smoke"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped early after 0.5 of 2 epochs" in err[0] and "--allow-incomplete" in err[0], err
    # with the flag the check is passed: what stops it now is offline mode (the tests never reach a Hub)
    assert main(["push", str(out), "someone/smoke", "--allow-incomplete"]) == 2
    err = capsys.readouterr().err
    assert "offline mode is on" in err and "stopped early" not in err


def _run(steps_per_epoch=4, epochs=2, grad_accum=1, global_step=8, stop=False, max_steps=None):
    cfg = SimpleNamespace(epochs=epochs, grad_accum_steps=grad_accum, max_steps=max_steps)
    return run_status(cfg, SimpleNamespace(steps_per_epoch=steps_per_epoch),
                      TrainProgress(epoch=epochs, global_step=global_step, stop=stop))


def test_run_status():
    full = {"completed": True, "epochs_completed": 2, "steps_completed": 8, "steps_planned": 8}
    assert _run() == full
    assert _run(stop=True, max_steps=8) == full  # --max-steps at (or past) the last planned step: complete
    assert _run(stop=True, global_step=3, max_steps=3) == {
        "completed": False, "epochs_completed": 0.75, "steps_completed": 3, "steps_planned": 8,
        "stopped_early_reason": "--max-steps 3"}
    assert _run(grad_accum=2, global_step=4) == {**full, "steps_completed": 4, "steps_planned": 4}
    assert stopped_early({"completed": True}) is None and stopped_early({}) is None  # older records: no claim
    assert stopped_early({"completed": False}) == "stopped early"
