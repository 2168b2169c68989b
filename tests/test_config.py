import subprocess
import sys

import numpy as np
import pytest

from timm_dynmix import OP_SETS, DynMixConfig, format_config, parse_config


def test_defaults_and_canonical_string():
    cfg = parse_config("dynmix")
    assert cfg == DynMixConfig()
    assert cfg.magnitude == 3 and cfg.depth == 2 and cfg.depth2_prob == 0.5 and cfg.alpha == 1
    assert cfg.weights == "pair" and cfg.blend is False and cfg.num_mixes == 2 and cfg.ops == OP_SETS["cifar"]
    assert str(cfg) == "dynmix-m3-d2-p0.5-a1-wpair-b0-n2-ocifar"
    assert parse_config("dynmix-m3-d2-a1") == cfg


def test_every_key_parses():
    cfg = parse_config("dynmix-m5.5-d2-p0.25-a0.5-windep-b1-n3-oimagenet_upright")
    assert cfg == DynMixConfig(magnitude=5.5, depth=2, depth2_prob=0.25, alpha=0.5, weights="indep", blend=True,
                               num_mixes=3, ops=OP_SETS["imagenet_upright"])
    assert "flip_v" not in cfg.ops and "downscale" in cfg.ops


def test_custom_op_list_round_trips():
    cfg = parse_config("dynmix-orotate.equalize.flip_h")
    assert cfg.ops == ("rotate", "equalize", "flip_h")
    assert cfg.op_set_name is None
    assert str(cfg).endswith("-orotate.equalize.flip_h")
    assert parse_config(str(cfg)) == cfg
    assert DynMixConfig(ops="imagenet").op_set_name == "imagenet"


def test_depth1_drops_p():
    cfg = parse_config("dynmix-d1")
    assert cfg.depth2_prob == 0.0
    assert "-p" not in str(cfg)
    assert parse_config(str(cfg)) == cfg


def test_round_trip_random_configs():
    rng = np.random.default_rng(0)
    names = list(OP_SETS) + ["custom"]
    for _ in range(300):
        ops = names[rng.integers(len(names))]
        if ops == "custom":
            pool = OP_SETS["imagenet"]
            ops = tuple(pool[i] for i in rng.choice(len(pool), size=rng.integers(1, 6), replace=False))
        depth = int(rng.integers(1, 3))
        cfg = DynMixConfig(magnitude=round(float(rng.uniform(0.1, 10)), int(rng.integers(0, 4))) or 0.1,
                           depth=depth, depth2_prob=float(rng.choice([0.0, 0.3, 0.5, 1.0])),
                           alpha=float(rng.choice([0.1, 0.5, 1.0, 2.0, 100.0])),
                           weights=str(rng.choice(["pair", "indep", "linear"])), blend=bool(rng.integers(2)),
                           num_mixes=int(rng.integers(1, 9)), ops=ops)
        text = format_config(cfg)
        assert parse_config(text) == cfg, text
        assert format_config(parse_config(text)) == text


@pytest.mark.parametrize("text, match", [
    ("augmix-m3", "must start with 'dynmix'"),
    ("dynmix-x3", "unknown section 'x3'"),
    ("dynmix-m", "unknown section 'm'"),
    ("dynmix-m3-m4", "given twice"),
    ("dynmix-mfoo", "needs a number"),
    ("dynmix-m11", r"magnitude must be in \[0.1, 10\]"),
    ("dynmix-m0", r"magnitude must be in \[0.1, 10\]"),
    ("dynmix-d3", "depth must be 1 or 2"),
    ("dynmix-d1.5", "needs an integer"),
    ("dynmix-p1.5", r"depth2_prob must be in \[0, 1\]"),
    ("dynmix-d1-p0.5", "needs 'd2'"),
    ("dynmix-a0", r"alpha must be in \(0, 100\]"),
    ("dynmix-anan", "finite"),
    ("dynmix-wfoo", "weights must be one of pair, indep, linear"),
    ("dynmix-b2", "blend must be 0/1"),
    ("dynmix-n0", r"num_mixes must be in \[1, 8\]"),
    ("dynmix-n9", r"num_mixes must be in \[1, 8\]"),
    ("dynmix-ofoo", "unknown DynMix op set 'foo'.*known sets: cifar, cifar_upright"),
    ("dynmix-orotate.blur", "unknown DynMix op 'blur'.*known ops: flip_h"),
    ("dynmix-orotate.rotate", "must not repeat"),
])
def test_bad_strings_raise_value_error(text, match):
    with pytest.raises(ValueError, match=match):
        parse_config(text)


def test_bad_types():
    with pytest.raises(TypeError, match="dynmix-"):
        parse_config(3)
    with pytest.raises(TypeError, match="magnitude must be a number"):
        DynMixConfig(magnitude="3")
    with pytest.raises(TypeError, match="ops must be"):
        DynMixConfig(ops=[1, 2])


def test_errors_survive_python_O():
    """User-input checks are not asserts: they must still fire under ``python -O``."""
    code = ("from timm_dynmix import parse_config, DynamicMixup\n"
            "for bad in ('dynmix-m99', 'dynmix-zz', 'dynmix-n0'):\n"
            "    try:\n        parse_config(bad)\n    except ValueError as e:\n        print('ValueError', e)\n"
            "try:\n    DynamicMixup('dynmix', output='numpy')\nexcept ValueError as e:\n    print('ValueError', e)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.count("ValueError") == 4, out
    assert "magnitude must be in [0.1, 10]" in out and "output must be one of pil, tensor" in out
