"""AugMixBatch: the official AugMix on batches, per-sample draws; fidelity against the official code's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import cifar10_test_arrays
from PIL import Image, ImageEnhance

import timm_dynmix
from timm_dynmix.augment.augmix_batch import (
    AUGMIX_BATCH_ALL_OPS,
    AUGMIX_BATCH_OPS,
    AugMixBatch,
    AugMixBatchParams,
    _parameters,
    parse_augmix_batch_config,
)
from timm_dynmix.augment.baselines import AUGMIX_OPS, AugMix, AugMixConfig, AugMixParams
from timm_dynmix.rng import derive_seed


def synthetic_batch(n: int = 64, size: int = 32) -> np.ndarray:
    """Blocky colour images with noise (uint8 NHWC): deterministic, needs no data files."""
    rng = np.random.default_rng(20261204)
    blocks = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.int64)
    x = np.repeat(np.repeat(blocks, size // 4, axis=1), size // 4, axis=2)
    x = x + rng.integers(-24, 25, (n, size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def synth() -> torch.Tensor:
    return _nchw(synthetic_batch())


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these small batched ops gain nothing from more, and on a busy machine OpenMP's
    waiting threads cost seconds per call."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# Reference figures: mean |view - clean| on the 0-255 scale (before normalization), from the official code.
#
# How they were produced: google-research/augmix at commit 9b9824c7c19bf7e72df2d085d97b99b3bfb00ba4,
# augmentations.py and the aug() function of cifar.py copied unchanged into a scratch folder and run with
# Pillow 13.0.0 and preprocess = ToTensor (float CHW in [0, 1], no normalization), with np.random.seed(s) for
# s = 0..39 and a loop over the images in order. "overall": the CIFAR settings (width 3, depth -1, severity 3,
# alpha 1); one mixed view per image. Per op: width 1, depth 1, augmentations.augmentations replaced by a list of
# that one op, and np.random.beta monkeypatched to return 1 (skip weight m = 1), so the view is the op's output;
# the four overlapping ops (color, contrast, brightness, sharpness) from augmentations_all. Each entry is
# (mean over the 40 seeds of the per-seed mean over the images, standard deviation of the per-seed means).
# Inputs: the first 200 CIFAR-10 test images of ../shared (cifar10_test_uint8.npz), and synthetic_batch() above.
REF_CIFAR = {
    "overall": (11.8432, 0.7020),
    "autocontrast": (12.2498, 0.0), "equalize": (38.5627, 0.0), "posterize": (8.9728, 0.2325),
    "rotate": (13.8616, 0.6309), "solarize": (21.5213, 1.2082), "shear_x": (11.9914, 0.4718),
    "shear_y": (12.9581, 0.5065), "translate_x": (17.7253, 1.0476), "translate_y": (19.4055, 1.1395),
    "color": (7.5963, 0.1397), "contrast": (28.3985, 0.4842), "brightness": (76.7579, 1.3788),
    "sharpness": (3.5340, 0.0520),
}
REF_SYNTH = {
    "overall": (12.8880, 1.2895),
    "autocontrast": (2.5220, 0.0), "equalize": (29.8181, 0.0), "posterize": (8.8076, 0.3259),
    "rotate": (19.4429, 1.4860), "solarize": (31.6207, 1.8188), "shear_x": (15.7863, 1.0403),
    "shear_y": (15.8118, 1.0211), "translate_x": (22.7634, 2.2348), "translate_y": (22.7707, 2.2259),
    "color": (32.5244, 0.9688), "contrast": (39.2828, 1.1475), "brightness": (78.8639, 2.2651),
    "sharpness": (6.8336, 0.1971),
}
REF_SEEDS = 40


def _tolerance(spread: float, seeds: int) -> float:
    """4 standard errors of the difference of two seed means (the reference's 40 seeds, ours ``seeds``), using the
    reference's own per-seed spread for both; deterministic ops (no spread) must agree to float rounding."""
    if spread == 0.0:
        return 0.01
    return 4.0 * spread * math.sqrt(1.0 / REF_SEEDS + 1.0 / seeds)


def _overall(x: torch.Tensor, seeds: int) -> float:
    aug = AugMixBatch("augmix", num_mixes=1)
    clean = x.float()
    per = []
    for s in range(seeds):
        v = aug.views(x, (0.0,), (1.0,), generator=torch.Generator().manual_seed(1000 + s))[x.shape[0]:]
        per.append(float((v * 255.0 - clean).abs().mean()))  # the unrounded float mix, as the official code
    return float(np.mean(per))


def _forced_op(x: torch.Tensor, name: str, seeds: int) -> float:
    """Width 1, depth 1, op ``name``, skip weight 1: the mean |op(x) - x| with the official level and sign draws."""
    aug = AugMixBatch("augmix_official-w1-d1", num_mixes=1, all_ops=True)
    b, size = x.shape[0], tuple(x.shape[2:])
    code = torch.full((b,), AUGMIX_BATCH_ALL_OPS.index(name))
    clean = x.float()
    per = []
    for s in range(seeds):
        g = torch.Generator().manual_seed(2000 + s)
        level = 0.1 + 2.9 * torch.rand(b, dtype=torch.float64, generator=g)
        negative = torch.rand(b, dtype=torch.float64, generator=g) > 0.5
        params = AugMixBatchParams(code[None], _parameters(code, level, negative, size)[None], level[None],
                                   torch.ones(1, b, 1), torch.ones(1, b), size)
        per.append(float((aug.apply(x, params)[0].float() - clean).abs().mean()))
    return float(np.mean(per))


def _check_fidelity(x: torch.Tensor, ref: dict[str, tuple[float, float]], overall_seeds: int,
                    op_seeds: int) -> None:
    got = _overall(x, overall_seeds)
    mean, spread = ref["overall"]
    assert abs(got - mean) <= _tolerance(spread, overall_seeds), ("overall", got, mean)
    for name in AUGMIX_BATCH_ALL_OPS:
        got = _forced_op(x, name, op_seeds)
        mean, spread = ref[name]
        assert abs(got - mean) <= _tolerance(spread, op_seeds), (name, got, mean)


def test_fidelity_synthetic_batch(synth):
    _check_fidelity(synth, REF_SYNTH, overall_seeds=20, op_seeds=10)


def test_fidelity_cifar10():
    x, _ = cifar10_test_arrays(200)
    _check_fidelity(_nchw(x), REF_CIFAR, overall_seeds=12, op_seeds=6)


# ----------------------------------------------------------------------------------------------------------------
# the same ops and the same distribution as the per-image official AugMix
_ENHANCE = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast, "brightness": ImageEnhance.Brightness,
            "sharpness": ImageEnhance.Sharpness}


@pytest.mark.parametrize("name", AUGMIX_BATCH_ALL_OPS)
def test_every_op_matches_pil(synth, name):
    """Each batched op against the per-image path (AugMix's PIL ops; ImageEnhance for the four extra ops)."""
    x = synth[:24]
    b = x.shape[0]
    g = torch.Generator().manual_seed(5)
    level = 0.1 + 9.9 * torch.rand(b, dtype=torch.float64, generator=g)
    negative = torch.rand(b, generator=g) > 0.5
    code = torch.full((b,), AUGMIX_BATCH_ALL_OPS.index(name))
    param = _parameters(code, level, negative, (32, 32))
    params = AugMixBatchParams(code[None], param[None], level[None], torch.ones(1, b, 1), torch.ones(1, b), (32, 32))
    out = AugMixBatch("augmix_official-w1-d1", num_mixes=1, all_ops=True).apply(x, params)[0]
    refs = []
    for i in range(b):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        if name in _ENHANCE:
            refs.append(np.asarray(_ENHANCE[name](img).enhance(float(param[i]))))
            assert float(param[i]) == pytest.approx(float(level[i]) * 1.8 / 10 + 0.1, abs=1e-12)
            continue
        op = AUGMIX_OPS[name]
        expected = 0.0 if op.magnitude is None else op.magnitude(float(level[i]), (32, 32))
        expected = -expected if op.signed and bool(negative[i]) else expected
        assert float(param[i]) == expected  # the official level -> parameter formula, bit for bit
        refs.append(np.asarray(op.apply(img, expected)))
    diff = (out.int() - _nchw(np.stack(refs)).int()).abs()
    assert int(diff.max()) <= 1  # bilinear ops: float32 vs PIL's double at truncation boundaries
    assert float((diff > 0).float().mean()) < 0.005


def test_views_equal_per_image_augmix_for_the_same_draws(synth):
    """The whole view (chains, Dirichlet/Beta mix) equals AugMix.apply_float given the same choices."""
    x = synth[:8]
    aug = AugMixBatch("augmix", num_mixes=2)
    params = aug.sample_params(8, (32, 32), seed=3, epoch=1, indices=list(range(100, 108)))
    views = aug.views(x, (0.0,), (1.0,), seed=3, epoch=1, indices=list(range(100, 108)))
    per_image = AugMix("augmix")
    for v in range(2):
        for i in range(8):
            chains = tuple(params.chain(v, i, c) for c in range(params.width))
            p = AugMixParams(tuple(float(w) for w in params.weights[v, i]), float(params.skip[v, i]), chains,
                             tuple(tuple(None for _ in ch) for ch in chains))
            img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
            ref = torch.from_numpy(per_image.apply_float(img, p)).permute(2, 0, 1)
            got = views[(v + 1) * 8 + i]
            assert float((got - ref).abs().max()) <= 1.01 / 255  # an op pixel may differ by 1 (see above)


def test_draws_have_the_official_distribution():
    """Op, depth, level, sign, weight and skip statistics of many draws vs the per-image AugMix's draws."""
    aug = AugMixBatch("augmix", num_mixes=1)
    n = 6000
    p = aug.sample_params(n, (32, 32), generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    ref = [AugMix("augmix").sample_params(rng, (32, 32)) for _ in range(2000)]
    ref_ops = [name for r in ref for ch in r.chains for name, _ in ch]
    ref_depths = np.array([len(ch) for r in ref for ch in r.chains])
    ref_levels = np.array([lv for r in ref for ch in r.levels for lv in ch if lv is not None])
    codes = p.code[p.code >= 0]
    for k, name in enumerate(AUGMIX_BATCH_OPS):
        ours, theirs = float((codes == k).double().mean()), ref_ops.count(name) / len(ref_ops)
        assert abs(ours - 1 / 9) < 0.01 and abs(theirs - 1 / 9) < 0.02, name
    depth = p.depth.double()
    assert abs(float(depth.mean()) - 2.0) < 0.03 and abs(float(ref_depths.mean()) - 2.0) < 0.06
    assert set(depth.long().tolist()) == {1, 2, 3}
    levels = p.level[~torch.isnan(p.level)]
    assert 0.1 <= float(levels.min()) and float(levels.max()) < 3.0
    assert abs(float(levels.mean()) - 1.55) < 0.02 and abs(float(ref_levels.mean()) - 1.55) < 0.05
    signed = (p.code == AUGMIX_BATCH_OPS.index("rotate")) & (p.param != 0)
    assert abs(float((p.param[signed] < 0).double().mean()) - 0.5) < 0.04
    w = p.weights.view(-1, 3).double()
    assert torch.allclose(w.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-6)
    ref_w = np.array([r.weights for r in ref])
    assert abs(float(w.mean()) - 1 / 3) < 0.005 and abs(float(w.var()) - 1 / 18) < 0.003  # Dirichlet(1, 1, 1)
    assert abs(float(ref_w.var()) - 1 / 18) < 0.005
    skip = p.skip.double()
    ref_skip = np.array([r.skip for r in ref])
    assert abs(float(skip.mean()) - 0.5) < 0.015 and abs(float(skip.var()) - 1 / 12) < 0.005  # Beta(1, 1)
    assert abs(float(ref_skip.mean()) - 0.5) < 0.03


def test_per_image_augmix_has_the_same_view_statistics(synth):
    """The per-image official AugMix (the DataLoader path) against the same reference figure: both paths agree."""
    aug = AugMix("augmix")
    imgs = [Image.fromarray(a) for a in synth.permute(0, 2, 3, 1).numpy()]
    clean = synth.float()
    per = []
    for s in range(4):
        rng = np.random.default_rng(3000 + s)
        views = torch.stack([aug(img, rng=rng) for img in imgs]) * 255.0
        per.append(float((views - clean).abs().mean()))
    mean, spread = REF_SYNTH["overall"]
    assert abs(float(np.mean(per)) - mean) <= _tolerance(spread, 4)


def test_small_alpha_is_finite():
    p = AugMixBatch("augmix_official-a0.01").sample_params(500, (32, 32), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(p.weights).all() and torch.isfinite(p.skip).all()
    assert float(p.weights.max(dim=-1).values.mean()) > 0.9  # nearly one-hot, as Dirichlet(0.01) is


# ----------------------------------------------------------------------------------------------------------------
# seeding
def test_per_sample_seeding_is_independent_of_the_batch(synth):
    aug = AugMixBatch("augmix", num_mixes=2)
    idx = torch.tensor([7, 3, 11, 40, 2])
    batch = aug(synth[:5], seed=9, epoch=4, indices=idx)
    alone = aug(synth[2:3], seed=9, epoch=4, indices=[11])
    for v in range(2):
        assert torch.equal(batch[v][2:3], alone[v])
    as_numpy = aug(synth[:5], seed=9, epoch=4, indices=idx.numpy())
    as_list = aug(synth[:5], seed=9, epoch=4, indices=idx.tolist())
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(batch, as_numpy, as_list))
    views = aug.views(synth[:5], seed=9, epoch=4, indices=idx)
    assert torch.equal(views, aug.views(synth[:5], seed=9, epoch=4, indices=idx))  # deterministic
    assert not torch.equal(views, aug.views(synth[:5], seed=9, epoch=5, indices=idx))  # epoch is a key
    assert not torch.equal(views, aug.views(synth[:5], seed=8, epoch=4, indices=idx))
    assert not torch.equal(batch[0], batch[1])  # views differ


def test_seeded_draws_come_from_derive_seed():
    aug = AugMixBatch("augmix", num_mixes=2)
    p = aug.sample_params(1, (32, 32), seed=5, epoch=2, indices=[17])
    g = torch.Generator().manual_seed(derive_seed(5, 2, 17, 2, split="augmix"))  # view 1 (0-based) -> key 2
    gam = torch._standard_gamma(torch.full((5,), 2.0, dtype=torch.float64), generator=g)
    u = torch.rand(3 + 3 * 9 + 5, dtype=torch.float64, generator=g)
    log_g = torch.log(gam) + torch.log(u[-5:])
    assert torch.allclose(p.weights[1, 0].double(), torch.softmax(log_g[:3], 0), atol=1e-6)
    assert float(p.depth.view(2, 3, 1)[1, 0, 0]) == 1 + int(u[0] * 3)


def test_generator_draws_are_reproducible(synth):
    aug = AugMixBatch("augmix")
    a = aug.views(synth[:6], generator=torch.Generator().manual_seed(1))
    b = aug.views(synth[:6], generator=torch.Generator().manual_seed(1))
    c = aug.views(synth[:6], generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    default = AugMixBatch("augmix", generator=torch.Generator().manual_seed(1))
    assert torch.equal(default.views(synth[:6]), a)


# ----------------------------------------------------------------------------------------------------------------
# shapes, dtypes, API
def test_shapes_and_dtypes(synth):
    aug = AugMixBatch("augmix", num_mixes=3)
    assert aug.num_mixes == 3 and aug.num_splits == 4
    x = synth[:4]
    out = aug(x, seed=0)
    assert len(out) == 3 and all(o.shape == x.shape and o.dtype == torch.uint8 for o in out)
    xf = x.float() / 255
    outf = aug(xf, seed=0)
    assert all(o.dtype == torch.float32 and o.shape == x.shape for o in outf)
    assert max(float((o * 255 - q.float()).abs().max()) for o, q in zip(outf, out)) < 20  # same draws, no rounding
    v = aug.views(x, seed=0)
    assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
    mean, std = torch.tensor(timm_dynmix.augment.augmix_batch.IMAGENET_DEFAULT_MEAN), torch.tensor(
        timm_dynmix.augment.augmix_batch.IMAGENET_DEFAULT_STD)
    assert torch.allclose(v[:4], (x.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1), atol=1e-5)
    gray = AugMixBatch("augmix", all_ops=True)(torch.randint(0, 256, (3, 1, 20, 28), dtype=torch.uint8), seed=1)
    assert gray[0].shape == (3, 1, 20, 28)
    params = aug.sample_params(4, (32, 32), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(aug.apply(x, params), out))
    assert aug(x[:0], seed=0)[0].shape == (0, 3, 32, 32)


def test_chunking_does_not_change_results(synth):
    a = AugMixBatch("augmix").views(synth[:10], seed=4)
    b = AugMixBatch("augmix", chunk_size=3).views(synth[:10], seed=4)
    assert torch.equal(a, b)


def test_all_ops_draws_the_overlapping_ops():
    p = AugMixBatch("augmix", all_ops=True).sample_params(400, (32, 32), generator=torch.Generator().manual_seed(0))
    drawn = {AUGMIX_BATCH_ALL_OPS[c] for c in p.code[p.code >= 0].tolist()}
    assert drawn == set(AUGMIX_BATCH_ALL_OPS)
    p = AugMixBatch("augmix").sample_params(400, (32, 32), generator=torch.Generator().manual_seed(0))
    assert {AUGMIX_BATCH_ALL_OPS[c] for c in p.code[p.code >= 0].tolist()} == set(AUGMIX_BATCH_OPS)


def test_config_strings():
    official = AugMixConfig()
    assert parse_augmix_batch_config("augmix") == official
    assert parse_augmix_batch_config("augmix_official-s3-w3-d0-a1") == official
    assert parse_augmix_batch_config("augmix-m3-w3-d-1-a1") == official  # timm's grammar, depth -1 = random
    assert parse_augmix_batch_config("augmix-m3-w3") == official
    assert parse_augmix_batch_config("augmix-m1-w2-d2-a0.5") == AugMixConfig(severity=1, width=2, depth=2, alpha=0.5)
    assert AugMixBatch("augmix-m1-w4").config == AugMixConfig(severity=1, width=4)
    assert "augmix_official-s3-w3-d0-a1" in repr(AugMixBatch("augmix"))


@pytest.mark.parametrize("config, match", [
    ("augmix-timm", "timm's own per-image AugMix"),
    ("augmix-m3-mstd0.5", "unknown section 'mstd0.5'"),
    ("augmix-m3-b1", "unknown section 'b1'"),
    ("augmix-m3-m4", "given twice"),
    ("augmix-w40", "width must be in"),
    ("augmix-m11", "severity must be in"),
    ("rand-m9", "AugMixBatch config must be"),
    ("augmix_official-x1", "unknown section"),
])
def test_bad_configs(config, match):
    with pytest.raises(ValueError, match=match):
        AugMixBatch(config)


def test_errors(synth):
    aug = AugMixBatch("augmix")
    with pytest.raises(TypeError, match="AugMix config must be"):
        AugMixBatch(3)
    with pytest.raises(ValueError, match="num_mixes must be an integer in"):
        AugMixBatch("augmix", num_mixes=0)
    with pytest.raises(TypeError, match="all_ops must be a bool"):
        AugMixBatch("augmix", all_ops="yes")
    with pytest.raises(ValueError, match="either a generator or a seed"):
        aug(synth[:2], torch.Generator(), seed=1)
    with pytest.raises(ValueError, match="need a seed too"):
        aug(synth[:2], indices=[0, 1])
    with pytest.raises(ValueError, match="one dataset index per image: 2 expected, got 3"):
        aug(synth[:2], seed=0, indices=[0, 1, 2])
    with pytest.raises(ValueError, match="integers >= 0"):
        aug(synth[:2], seed=0, indices=[0, -1])
    with pytest.raises(ValueError, match="1-D integer tensor"):
        aug(synth[:2], seed=0, indices=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        aug(synth[:2], seed=-1)
    with pytest.raises(TypeError, match=r"torch\.Tensor batch"):
        aug(Image.new("RGB", (32, 32)))
    with pytest.raises(ValueError, match="4-D batch"):
        aug(synth[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(synth[:2].float())
    params = aug.sample_params(2, (32, 32), seed=0)
    with pytest.raises(ValueError, match="drawn for 2 images"):
        aug.apply(synth[:3], params)
    with pytest.raises(ValueError, match="this AugMixBatch makes 1"):
        AugMixBatch("augmix", num_mixes=1).apply(synth[:2], params)
    with pytest.raises(TypeError, match="AugMixBatchParams"):
        aug.apply(synth[:2], {"code": 1})


def test_public_export():
    assert timm_dynmix.AugMixBatch is AugMixBatch
    assert "AugMixBatch" in timm_dynmix.__all__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(synth):
    """The same parameters on a GPU give the CPU's views (bilinear ops within 1), and both seeding modes run there."""
    aug = AugMixBatch("augmix", all_ops=True)
    params = aug.sample_params(16, (32, 32), seed=2, epoch=1, indices=list(range(16)))
    cpu = aug.apply(synth[:16], params)
    gpu = aug.apply(synth[:16].cuda(), params.to("cuda"))
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda" and int((a.int() - b.cpu().int()).abs().max()) <= 1
    seeded = aug.views(synth[:16].cuda(), seed=2, epoch=1, indices=torch.arange(16))
    assert torch.allclose(seeded.cpu(), aug.views(synth[:16], seed=2, epoch=1, indices=torch.arange(16)), atol=0.05)
    gen = aug.views(synth[:16].cuda(), generator=torch.Generator(device="cuda").manual_seed(0))
    assert gen.shape == (48, 3, 32, 32) and torch.isfinite(gen).all()
