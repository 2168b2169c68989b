"""timm's auto-augment strings are parsed and range-checked before training (timm itself accepts nonsense silently)."""

from __future__ import annotations

import pytest
from timm.data.auto_augment import (
    AugMixAugment,
    RandAugment,
    augment_and_mix_transform,
    auto_augment_transform,
    rand_augment_transform,
)

from timm_dynmix import create_transform, validate_timm_aug
from timm_dynmix.augment.timm_aug import is_timm_aug, parse_timm_aug
from timm_dynmix.cli import main
from timm_dynmix.train import TrainConfig

VALID = ["augmix-m3-w3", "augmix-m5-w4-d2", "augmix-m3-w3-mstd0.5-a0.5-b1", "augmix-m3-w3-d0", "rand-m9-mstd0.5",
         "rand-m9-n3-mstd0.5-inc1", "rand-mstd1-tweights", "rand-m7-n2-p0.3-t3a", "rand-m15-mmax20", "original",
         "originalr-mstd0.5", "v0", "v0r", "3a"]


def _timm(aug):
    if aug.startswith("augmix"):
        return augment_and_mix_transform(aug, {})
    return rand_augment_transform(aug, {}) if aug.startswith("rand") else auto_augment_transform(aug, {})


@pytest.mark.parametrize("aug", VALID)
def test_valid_strings_parse_as_timm_reads_them(aug):
    validate_timm_aug(aug)
    parsed = parse_timm_aug(aug)
    t = _timm(aug)
    if isinstance(t, AugMixAugment):
        assert (t.width, t.depth, t.alpha, t.blended) == (parsed.get("w", 3), parsed.get("d", -1),
                                                         parsed.get("a", 1.0), bool(parsed.get("b", 0)))
        assert {op.magnitude for op in t.ops} == {parsed.get("m", 3)}
    elif isinstance(t, RandAugment):
        assert t.num_layers == parsed.get("n", 2)
        assert {(op.magnitude, op.prob) for op in t.ops} == {(parsed.get("m", 10), parsed.get("p", 0.5))}
        assert (t.choice_weights is not None) == (parsed.get("t") in ("weights", "3aw"))
    else:
        assert parsed["kind"] == "autoaugment" and parsed["policy"] == aug.split("-")[0]
    assert is_timm_aug(aug)


# every one of these builds a timm transform without a word (the first column shows what timm does with it)
INVALID = [
    ("augmix-m3-w0", r"section 'w0': w is the chain width .* must be >= 1"),  # zero chains: darkened images
    ("augmix-foo", r"section 'foo' is not a key followed by a number; augmix keys are m: "),  # skipped
    ("augmix-m3-x2", r"section 'x2' is unknown key 'x'"),  # timm: AssertionError at transform creation
    ("augmix-m11", r"section 'm11': m is the magnitude .* must be 1 to 10"),  # clipped to 10
    ("augmix-m3-a0", r"section 'a0': a is the alpha .* must be > 0"),  # Dirichlet(0): NaN weights
    ("augmix-m3-m5", r"'m' is set twice"),  # timm keeps the last
    ("augmix-m3--w3", r"section '' is an empty section"),
    ("rand-m9-mstd0.5-tfoo", r"section 'tfoo': t<name> names the op set, one of tweights, t3a, t3aw"),  # default set
    ("rand-m9-p1.5", r"section 'p1.5': p is the probability .* must be >= 0 and <= 1"),
    ("rand-m12", r"magnitude m12 is above the maximum 10"),  # clipped to 10
    ("rand-m9-n0", r"section 'n0': n is the ops per image and must be >= 1"),  # no op at all
    ("rand-m9-fast", r"section 'fast' is not a key followed by a number"),  # skipped
    ("original-foo", r"section 'foo' is not a key followed by a number; autoaugment keys are mstd"),  # skipped
]


@pytest.mark.parametrize("aug, match", INVALID)
def test_invalid_strings_name_the_bad_part(aug, match):
    if aug != "augmix-m3-x2":
        _timm(aug)  # timm accepts it: the reason for checking ourselves
    with pytest.raises(ValueError, match=match) as info:
        validate_timm_aug(aug)
    assert f"invalid timm augmentation {aug!r}" in str(info.value)


def test_our_names_for_timm_strings_pass():
    TrainConfig(aug="augmix-timm").validate()  # timm's augmix-m3-w3


def test_not_timm_strings():
    for aug in ("augmix", "augmix_official-m3", "dynmix-m3", "randomish", "blur-m3", "v1"):
        assert not is_timm_aug(aug)
    with pytest.raises(ValueError, match=r"unknown timm augmentation 'v1': it must start with 'augmix-', 'rand-'"):
        validate_timm_aug("v1")
    with pytest.raises(TypeError, match="must be a string"):
        validate_timm_aug(3)


def test_batched_augmix_depth_spelling():
    """``d-1`` (the random depth 1-3, timm's default) is read as written; timm gets the string without it."""
    assert parse_timm_aug("augmix-m3-w3-d-1-a1") == {"kind": "augmix", "policy": "augmix", "m": 3, "w": 3, "d": -1,
                                                     "a": 1.0}
    t = create_transform(32, is_training=True, aug="augmix-m3-w3-d-1-a1")
    assert any(isinstance(s, AugMixAugment) and s.depth == -1 for s in t.transforms)


@pytest.mark.parametrize("aug", ["augmix-m3-w0", "augmix-foo"])
def test_refused_before_training(aug, capsys, tmp_path):
    with pytest.raises(ValueError, match=f"invalid timm augmentation '{aug}'"):
        TrainConfig(aug=aug).validate()
    with pytest.raises(ValueError, match=f"invalid timm augmentation '{aug}'"):
        create_transform(32, is_training=True, aug=aug)
    assert main(["train", "--aug", aug, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"timm-dynmix train: error: invalid timm augmentation '{aug}'"), err
    assert not (tmp_path / "out").exists()
