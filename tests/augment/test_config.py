import re
import subprocess
import sys

import numpy as np
import pytest

from timm_dynmix import OP_SETS, DynMixConfig, format_config, parse_config
from timm_dynmix.augment.config import given_keys


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


def _draw_number(rng, low, high, open_low=False):
    """A float in [low, high] (or (low, high]) spanning every scale: tiny, huge, round and with many digits."""
    kind = rng.integers(5)
    if kind == 0:  # log-uniform down to subnormals where the range reaches 0
        lo = max(low, 5e-324 if low == 0 else low)
        x = float(10 ** rng.uniform(np.log10(lo), np.log10(high)))
    elif kind == 1:  # the ends of the range and their neighbours
        x = float(rng.choice([low, high, np.nextafter(high, 0), np.nextafter(low, np.inf), 5e-324, 1e-5, 1e-300]))
    elif kind == 2:  # a few decimal digits
        x = round(float(rng.uniform(low, high)), int(rng.integers(0, 5)))
    else:  # full 17-digit doubles
        x = float(rng.uniform(low, high))
    x = min(max(x, low), high)
    if open_low and x <= low:
        x = np.nextafter(low, np.inf)
    return float(x)


def test_round_trip_random_configs():
    rng = np.random.default_rng(0)
    names = list(OP_SETS) + ["custom"]
    texts = set()
    for _ in range(1000):
        ops = names[rng.integers(len(names))]
        if ops == "custom":
            pool = OP_SETS["imagenet"]
            ops = tuple(pool[i] for i in rng.choice(len(pool), size=rng.integers(1, 6), replace=False))
        depth = int(rng.integers(1, 3))
        prob = {"depth2_prob": _draw_number(rng, 0.0, 1.0)} if depth == 2 else {}
        cfg = DynMixConfig(magnitude=_draw_number(rng, 0.1, 10.0), depth=depth, **prob,
                           alpha=_draw_number(rng, 0.0, 100.0, open_low=True),
                           weights=str(rng.choice(["pair", "indep", "linear"])), blend=bool(rng.integers(2)),
                           num_mixes=int(rng.integers(1, 9)), ops=ops)
        text = format_config(cfg)
        assert parse_config(text) == cfg, text
        assert format_config(parse_config(text)) == text
        numbers = [sec[1:] for sec in text.split("-")[1:] if sec[0] in "mpa"]
        assert all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", x) for x in numbers), text  # positional notation only
        texts.add(text)
    assert any("-a0.00001-" in t or "-p0.00001-" in t for t in texts)  # the case repr writes as 1e-05


@pytest.mark.parametrize("value", [1e-5, 5e-324, 1e-300, 2.5e-7, 99.99999999999999, 100.0, 0.1 + 0.2])
def test_tiny_and_huge_values_round_trip(value):
    cfg = DynMixConfig(alpha=value, depth2_prob=min(value, 1.0))
    text = str(cfg)
    assert "e-" not in text and "e+" not in text, text
    assert parse_config(text) == cfg and str(parse_config(text)) == text


def test_depth1_with_a_depth2_probability_is_refused_like_the_string():
    with pytest.raises(ValueError, match=r"depth2_prob 0\.7 \(config key 'p'\) needs depth 2"):
        DynMixConfig(depth=1, depth2_prob=0.7)
    with pytest.raises(ValueError, match="needs 'd2'"):
        parse_config("dynmix-d1-p0.7")
    # depth 1 without p (or with p0), and a depth change by replace(), keep working
    assert DynMixConfig(depth=1).depth2_prob == 0.0 == DynMixConfig(depth=1, depth2_prob=0).depth2_prob
    assert DynMixConfig().replace(depth=1) == parse_config("dynmix-d1")
    assert parse_config("dynmix-d1").replace(depth=2).depth2_prob == 0.5
    assert DynMixConfig(depth=2).depth2_prob == 0.5


def test_op_set_follows_image_size_without_an_o_key():
    assert parse_config("dynmix-m4", image_size=224).ops == OP_SETS["imagenet"]
    assert parse_config("dynmix-m4", image_size=(3, 32, 32)).ops == OP_SETS["cifar"]
    assert parse_config("dynmix", image_size=(65, 20)).ops == OP_SETS["imagenet"]
    assert parse_config("dynmix", image_size=64).ops == OP_SETS["cifar"]
    assert parse_config("dynmix-ocifar", image_size=224).ops == OP_SETS["cifar"]  # explicit wins
    assert parse_config("dynmix").ops == OP_SETS["cifar"]
    assert str(parse_config("dynmix", image_size=224)).endswith("-oimagenet")
    assert given_keys("dynmix-m3-n2") == {"m", "n"} and given_keys(DynMixConfig()) == set("mdpawbno")
    with pytest.raises(ValueError, match="image_size must hold positive integers"):
        parse_config("dynmix", image_size=(0, 32))


@pytest.mark.parametrize("text, match", [
    ("augmix-m3", "must start with 'dynmix'"),
    ("dynmix-x3", "unknown section 'x3'"),
    ("dynmix-m", r"key 'm' \(magnitude\) needs a value .*e\.g\. 'm3'"),
    ("dynmix-b", r"key 'b' \(blend\) needs a value .*e\.g\. 'b1'"),
    ("dynmix-m3-o", r"key 'o' \(ops\) needs a value"),
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
