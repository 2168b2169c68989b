"""A dataset without an eval split: a clear note, no evaluation, and never ``nan`` in what the run reports."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest
from conftest import make_image_folder

from timm_dynmix.cli import main

NAN = re.compile(r"\bnan\b", re.IGNORECASE)
ARGS = ["--max-steps", "1", "--batch-size", "6", "--num-workers", "0", "--epochs", "1", "--aug", "none"]


@pytest.fixture
def train_only(tmp_path):
    root = make_image_folder(tmp_path / "shapes", n_per_class=4)
    shutil.rmtree(root / "test")
    return root


def test_no_eval_split_is_said_not_nan(train_only, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="timm_dynmix.train.data"):
        assert main(["train", "--dataset", str(train_only), "--output-dir", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "done: no evaluation (the dataset has no eval split; name one with --eval-split)" in printed
    assert not NAN.search(printed)
    assert any("has no eval split (test, validation, val or valid; its splits: train)" in r.getMessage()
               and "--eval-split" in r.getMessage() for r in caplog.records)
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["eval_split"] is None and "clean_top1" not in results["metrics"]
    assert not NAN.search((out / "README.md").read_text())


def test_eval_split_names_one(train_only, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--dataset", str(train_only), "--eval-split", "train", "--output-dir", str(out),
                 *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "done: eval top-1 " in printed and not NAN.search(printed)
