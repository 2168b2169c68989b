"""``examples/train.py`` writes the training loop out; ``timm-dynmix train`` runs it in named steps.

Both take the same flags; from the same options and seed they must train bit-identical weights (one thread, CPU:
the same operations in the same order, so equality is exact, not a tolerance), and a run of the example stopped
mid-epoch and resumed with ``--resume`` must end with the weights of the uninterrupted run.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

from timm_dynmix.cli import main as cli_main
from timm_dynmix.train import find_latest_checkpoint

TINY = ["--max-train-samples", "96", "--max-eval-samples", "32", "--batch-size", "16", "--epochs", "2",
        "--num-workers", "0", "--num-threads", "1", "--seed", "3"]  # 6 steps per epoch on the digits data


def _example():
    spec = importlib.util.spec_from_file_location("timm_dynmix_example_train", ROOT / "examples" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_example(args, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    _example().main()


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(("aug", "resume"), [
    (["--aug", "dynmix"], "latest"),  # three views per image, JSD loss; resumed from the newest checkpoint
    (["--aug", "mixup", "--model-ema", "--model-ema-decay", "0.9"], "path"),  # one view, soft targets, EMA
], ids=["dynmix-jsd", "mixup-ema"])
def test_example_trains_what_the_cli_trains_and_resumes_exactly(tmp_path, monkeypatch, aug, resume):
    args = [*TINY, *aug]
    assert cli_main(["train", *args, "--output-dir", str(tmp_path / "cli")]) == 0
    _run_example([*args, "--output-dir", str(tmp_path / "example")], monkeypatch)
    cli, example = _weights(tmp_path / "cli"), _weights(tmp_path / "example")
    _assert_same_weights(cli, example)
    results = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in ("cli", "example")}
    timing = ("samples_per_s", "epoch_time_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in results["cli"]["history"]] == \
        [{k: v for k, v in h.items() if k not in timing} for h in results["example"]["history"]]
    assert results["example"]["config"] == {**results["cli"]["config"], "output_dir": str(tmp_path / "example")}
    assert find_latest_checkpoint(tmp_path / "example").name == "step_000000012"  # 96 / 16 x 2 epochs

    # stopped after 3 of epoch 0's 6 steps (a mid-epoch checkpoint), then resumed to the end
    cut = tmp_path / "cut"
    _run_example([*args, "--output-dir", str(cut), "--max-steps", "3", "--checkpoint-every", "3"], monkeypatch)
    checkpoint = find_latest_checkpoint(cut)
    assert checkpoint.name == "step_000000003"
    assert not torch.equal(_weights(cut)[next(iter(cli))], cli[next(iter(cli))])
    _run_example([*args, "--output-dir", str(cut), "--resume", "latest" if resume == "latest" else str(checkpoint)],
                 monkeypatch)
    _assert_same_weights(cli, _weights(cut))
    assert find_latest_checkpoint(cut).name == "step_000000012"


def test_example_resume_refuses_a_checkpoint_of_other_options(tmp_path, monkeypatch):
    args = [*TINY, "--aug", "none", "--epochs", "1", "--max-steps", "1", "--checkpoint-every", "1"]
    _run_example([*args, "--output-dir", str(tmp_path)], monkeypatch)
    with pytest.raises(SystemExit, match=r"cannot resume .* different batch_size"):
        _run_example([*args, "--batch-size", "8", "--output-dir", str(tmp_path), "--resume", "latest"], monkeypatch)


def test_the_example_shows_the_step_it_takes():
    """The views, the forward pass, the loss, the backward pass, the optimizer step, the evaluation, the checkpoint and
    the resume are calls written in ``training_function`` itself, not hidden behind one package call."""
    tree = ast.parse((ROOT / "examples" / "train.py").read_text(encoding="utf-8"))
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "training_function")
    called = {ast.unparse(n.func) for n in ast.walk(function) if isinstance(n, ast.Call)}
    shown = {"augment", "model", "criterion", "accelerator.backward", "optimizer.step", "scheduler.step_update",
             "evaluate", "save_checkpoint", "accelerator.load_state", "resume_progress"}
    assert shown <= called, f"not written out in examples/train.py: {sorted(shown - called)}"
    assert "train_step" not in called and "train_epoch" not in called
