"""timm_dynmix.fairness: runs are compared only when they differ in the compared fields."""

from __future__ import annotations

import pytest

from timm_dynmix.fairness import (
    IncomparableRunsError,
    check_comparable,
    config_differences,
    format_allowed_differences,
)

BASE = {"model": "fastnet_cifar", "stem": "learned", "data_path": "memory", "epochs": 20, "seed": 0, "aug": "none",
        "jsd": False, "jsd_weight": None, "views": 1, "output_dir": "runs/a", "workers": 0, "mean": [0.5] * 3}


def _cfg(**changes):
    return {**BASE, **changes}


def test_equal_but_for_the_augmentation_passes():
    runs = {"standard": _cfg(), "augmix": _cfg(aug="augmix-official", jsd=True, jsd_weight=12.0, views=3,
                                               output_dir="elsewhere", workers=3)}
    assert check_comparable(runs) == {}  # augmentation/loss fields and bookkeeping may differ


def test_a_different_network_is_refused_naming_field_and_values():
    runs = {"standard": _cfg(stem="whitened"), "augmix": _cfg(aug="augmix", stem="learned", data_path="loader")}
    with pytest.raises(IncomparableRunsError) as err:
        check_comparable(runs)
    text = str(err.value)
    assert "differ in data_path, stem" in text
    assert "stem: standard='whitened', augmix='learned'" in text and "--allow-diff" in text
    assert isinstance(err.value, ValueError)


def test_seeds_and_nested_fields():
    with pytest.raises(IncomparableRunsError, match="seed"):
        check_comparable({"s0": _cfg(), "s1": _cfg(seed=1)})
    assert check_comparable({"s0": _cfg(), "s1": _cfg(seed=1)}, compared={"seed"}) == {}
    diffs = config_differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": (1, 2)}, "d": 0})
    assert diffs == {"a.b": (1, 2), "d": ("<missing>", 0)}  # a tuple equals its list (JSON round trip)


def test_allow_diff_is_reported():
    runs = {"learned": _cfg(), "whitened": _cfg(stem="whitened")}
    shown = check_comparable(runs, allow_diff=["stem"])
    assert shown == {"stem": {"learned": "learned", "whitened": "whitened"}}
    lines = format_allowed_differences(shown)
    assert lines[1].startswith("**Not an identical configuration**")
    assert lines[2] == "- `stem`: learned = 'learned', whitened = 'whitened'"
    assert format_allowed_differences({}) == []


def test_unrecorded_runs_are_refused_unless_anything_goes():
    with pytest.raises(IncomparableRunsError, match=r"1 run\(s\) recorded no resolved configuration.*v1"):
        check_comparable({"new": _cfg(), "v1": None})
    shown = check_comparable({"new": _cfg(), "v1": None, "other": _cfg(epochs=40)}, allow_diff=["*"])
    assert shown["<resolved configuration>"] == {"v1": "not recorded"}
    assert shown["epochs"] == {"new": 20, "other": 40}
    with pytest.raises(ValueError, match="at least one run"):
        check_comparable({})
