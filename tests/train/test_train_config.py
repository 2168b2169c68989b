"""TrainConfig and its command line: flags from the fields' type hints, help texts beside the fields."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from timm_dynmix.cli.train import add_arguments
from timm_dynmix.train.config import TrainConfig, config_from_args, field_help, field_types


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_field_types_come_from_the_type_hints():
    kinds = field_types()
    # every field but the private parsed augmentation (TrainConfig._aug_spec) is an option
    assert set(kinds) == {f.name for f in dataclasses.fields(TrainConfig)} - {"_aug_spec"}
    assert kinds["epochs"] is int and kinds["max_steps"] is int and kinds["lr"] is float
    assert kinds["clip_grad"] is float and kinds["jsd"] is bool and kinds["data_dir"] is str
    assert field_help("aug").startswith("none, mixup") and field_help("seed").startswith("seed of the shuffle")
    assert all(field_help(name) for name in kinds)  # every option has a help line


def test_every_field_is_a_flag_of_its_type():
    actions = {a.dest: a for a in _parser()._actions}
    for name, kind in field_types().items():
        action = actions[name]
        assert action.default is None and action.help.startswith(field_help(name)), name
        assert re.search(r"\bdefault[: ]", action.help), name  # with its default (shown, or said in the text)
        if kind is bool:
            assert isinstance(action, argparse.BooleanOptionalAction), name
        else:
            assert action.type is kind, name
    assert "--mixed_precision" in actions["mixed_precision"].option_strings  # Accelerate's spelling, as before
    args = _parser().parse_args(["--epochs", "3", "--lr", "0.05", "--no-jsd", "--clip-grad", "1", "-c", "r.yaml"])
    assert (args.epochs, args.lr, args.jsd, args.clip_grad, args.config) == (3, 0.05, False, 1.0, "r.yaml")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--epochs", "two"])


def test_config_from_args_coerces_and_refuses_by_type():
    cfg = config_from_args({"lr": 1, "clip_grad": 2, "epochs": 2})
    assert isinstance(cfg.lr, float) and isinstance(cfg.clip_grad, float) and cfg.epochs == 2
    with pytest.raises(ValueError, match="option max_steps must be an int, got '5'"):
        config_from_args({"max_steps": "5"})
    with pytest.raises(ValueError, match="option jsd must be a bool"):
        config_from_args({"jsd": "yes"})
    with pytest.raises(ValueError, match="unknown training option 'epochz'"):
        config_from_args({"epochz": 1})
