"""DynamicMixupBatch: equivalence with the PIL path op by op and view by view, distribution, API and errors."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from timm_dynmix import DynamicMixup, DynamicMixupBatch, JsdLoss
from timm_dynmix.augment.batched import BatchParams, _apply_codes, _check_generator, apply_op
from timm_dynmix.augment.ops import OPS, PIXEL_OPS

# parameters exercised per op (signed ones both ways; solarize/posterize over their whole range)
PARAMS = {
    "flip_h": [0.0], "flip_v": [0.0],
    "rotate": [9.0, -4.3, 29.9, 0.7],
    "translate_x": [3.0, -7.0, 1.0, 0.0, 40.0], "translate_y": [-3.0, 5.0, 1.0, -32.0],
    "shear_x": [0.09, -0.27], "shear_y": [-0.09, 0.3],
    "autocontrast": [0.0], "equalize": [0.0],
    "solarize": [180.0, 256.0, 1.0, 0.0], "posterize": [1.0, 2.0, 3.0, 4.0],
    "downscale": [0.5, 0.73, 0.85, 0.97],
}


EXACT_OPS = (*PIXEL_OPS, "flip_h", "flip_v", "translate_x", "translate_y")


def to_batch(images):
    arrs = [np.asarray(im) for im in images]
    arrs = [a[:, :, None] if a.ndim == 2 else a for a in arrs]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def to_arrays(batch):
    return batch.permute(0, 2, 3, 1).numpy()


def pil_reference(images, name, param):
    out = [np.asarray(OPS[name].apply(im, param)) for im in images]
    return np.stack([a[:, :, None] if a.ndim == 2 else a for a in out]).astype(np.float64)


@pytest.fixture(scope="module")
def photo_crops(photo):
    """Larger natural images: non-square 96x136 crops and one 224x224 crop of a real photograph."""
    arr = np.asarray(photo)
    crops = [Image.fromarray(arr[y:y + 96, x:x + 136]) for y, x in ((0, 0), (150, 300), (300, 480), (60, 200))]
    return crops, [Image.fromarray(arr[100:324, 200:424])]


@pytest.mark.parametrize("name", list(OPS))
def test_op_matches_pil(real_images, photo_crops, name):
    """uint8: pixel ops and translations exact, other geometric ops within 1 level and far under 2/255 on average;
    float: close too (translations exact)."""
    small, big = photo_crops
    for images in (real_images, small, big, [im.convert("L") for im in real_images[:8]]):
        batch = to_batch(images)
        for param in PARAMS[name]:
            if name.startswith("translate"):
                param = float(round(param * images[0].size[0] / 32))
            ref = pil_reference(images, name, param)
            ours = to_arrays(apply_op(name, batch, param)).astype(np.float64)
            diff = np.abs(ours - ref)
            if name in EXACT_OPS:
                assert diff.max() == 0, (name, param)
            else:
                assert diff.max() <= 1 and diff.mean() < 0.1, (name, param, diff.max(), diff.mean())
                assert diff.mean() < 2.0  # the spec's bound (2/255), by a wide margin
            floats = to_arrays(apply_op(name, batch.float() / 255, param).double() * 255)
            fdiff = np.abs(floats - ref)
            # float mode does not truncate to uint8 (PIL's truncation makes it 0.5 darker on average)
            assert fdiff.mean() < (0.8 if name not in EXACT_OPS else 1e-4), (name, param, fdiff.mean())
            if name.startswith("translate"):  # a move of the input's values: no float arithmetic at all
                assert fdiff.max() < 1e-4, (name, param, fdiff.max())


def test_histogram_ops_edge_cases():
    """Constant channels, two values, one dominant value (equalize's step == 0) and a full range, as PIL."""
    rng = np.random.default_rng(0)
    imgs = [np.full((16, 16, 3), 77, np.uint8), np.zeros((16, 16, 3), np.uint8)]
    two = np.full((16, 16, 3), 10, np.uint8)
    two[:3, :5] = 200
    imgs.append(two)
    dominant = np.full((16, 16, 3), 128, np.uint8)
    dominant[0, :200 % 16] = 3
    dominant[0, 0, 0] = 250
    imgs.append(dominant)
    imgs.append(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    mixed = rng.integers(40, 90, (16, 16, 3), dtype=np.uint8)
    mixed[..., 1] = 5  # one constant channel next to varying ones
    imgs.append(mixed)
    images = [Image.fromarray(a) for a in imgs]
    batch = to_batch(images)
    for name in ("autocontrast", "equalize"):
        np.testing.assert_array_equal(to_arrays(apply_op(name, batch)), pil_reference(images, name, 0.0), err_msg=name)


def test_per_image_parameters_in_one_call(real_images):
    images = real_images[:6]
    params = torch.tensor([-20.0, -5.0, 0.3, 3.0, 12.5, 29.0], dtype=torch.float64)
    out = to_arrays(apply_op("rotate", to_batch(images), params))
    for i, im in enumerate(images):
        ref = np.asarray(OPS["rotate"].apply(im, float(params[i]))).astype(int)
        assert np.abs(out[i].astype(int) - ref).max() <= 1


@pytest.mark.parametrize("config", ["dynmix", "dynmix-oimagenet-m10-windep-d2-p0.7", "dynmix-b1-wlinear-n3",
                                    "dynmix-ocifar_upright-a0.3-d1"])
def test_views_match_the_pil_path(real_images, config):
    """The same BatchParams applied by the PIL DynamicMixup give the same views (uint8 and float outputs)."""
    batch = to_batch(real_images)
    aug = DynamicMixupBatch(config)
    params = aug.sample_params(len(real_images), (32, 32), generator=torch.Generator().manual_seed(1))
    outs = aug.apply(batch, params)
    floats = aug.apply(batch.float() / 255, params)
    pil = DynamicMixup(config)
    diffs, fdiffs = [], []
    for v in range(aug.num_mixes):
        for i, img in enumerate(real_images):
            ref = np.asarray(pil.apply(img, params.mix_params(v, i)), dtype=np.float64)
            diffs.append(np.abs(to_arrays(outs[v][i:i + 1])[0] - ref))
            fdiffs.append(np.abs(to_arrays(floats[v][i:i + 1].double() * 255)[0] - ref))
    diffs, fdiffs = np.stack(diffs), np.stack(fdiffs)
    assert diffs.mean() < 0.02 and np.quantile(diffs, 0.9999) <= 1, (diffs.mean(), diffs.max())
    assert fdiffs.mean() < 1.0


def test_translations_are_whole_pixels_and_identical_to_the_pil_path(real_images):
    """DynamicMixupBatch draws whole-pixel translations (AugMix's int(level * W/3 / 10)); views made of
    translations and flips only are identical to the PIL path's; fractional translations are refused."""
    batch = to_batch(real_images)
    aug = DynamicMixupBatch("dynmix-m10-otranslate_x.translate_y.flip_h-windep")
    params = aug.sample_params(len(real_images), (32, 32), generator=torch.Generator().manual_seed(5))
    moves = (params.code == list(OPS).index("translate_x")) | (params.code == list(OPS).index("translate_y"))
    assert bool((params.param[moves] == torch.trunc(params.param[moves])).all())
    assert float(params.param.abs().max()) >= 5  # large moves are drawn at m10
    expected = torch.floor(params.level[moves] * (32 / 3) / 10).abs()
    torch.testing.assert_close(params.param[moves].abs(), expected, rtol=0, atol=0)
    # the chains DynamicMixupBatch runs (slot s = (view * 2 + chain) * B + image) equal the PIL path's chains
    chains = batch.repeat(2 * aug.num_mixes, 1, 1, 1)
    for t in range(2):
        chains = _apply_codes(chains, params.code[t], params.param[t], True)
    b = len(real_images)
    for v in range(aug.num_mixes):
        for i, img in enumerate(real_images):
            for c, steps in enumerate(params.mix_params(v, i).chains):
                ref = img
                for name, param in steps:
                    ref = OPS[name].apply(ref, param)
                np.testing.assert_array_equal(to_arrays(chains[(v * 2 + c) * b + i:][:1])[0], np.asarray(ref))
    # and the views differ from the PIL path's only by the rounding of the mix
    outs = aug.apply(batch, params)
    pil = DynamicMixup(aug.config)
    for v in range(aug.num_mixes):
        for i, img in enumerate(real_images):
            ref = np.asarray(pil.apply(img, params.mix_params(v, i)), dtype=np.int16)
            assert np.abs(to_arrays(outs[v][i:i + 1])[0].astype(np.int16) - ref).max() <= 1
    with pytest.raises(ValueError, match=r"whole pixels.*got \[2\.5\]"):
        apply_op("translate_x", batch, 2.5)
    bad = BatchParams(params.code.clone(), params.param.clone(), params.level, params.m1, params.m2, None,
                      params.size)
    bad.param[0, int(torch.nonzero(params.code[0] == list(OPS).index("translate_y"))[0])] = 0.5
    with pytest.raises(ValueError, match="whole pixels"):
        aug.apply(batch, bad)


def test_grayscale_batch(real_images):
    gray = [im.convert("L") for im in real_images[:12]]
    batch = to_batch(gray)
    assert batch.shape == (12, 1, 32, 32)
    aug = DynamicMixupBatch("dynmix-oimagenet-m6")
    params = aug.sample_params(12, (32, 32), generator=torch.Generator().manual_seed(3))
    outs = aug.apply(batch, params)
    assert [o.shape for o in outs] == [(12, 1, 32, 32)] * 2
    pil = DynamicMixup(aug.config)
    for v in range(2):
        for i, img in enumerate(gray):
            ref = np.asarray(pil.apply(img, params.mix_params(v, i)), dtype=np.int16)
            assert np.abs(outs[v][i, 0].numpy().astype(np.int16) - ref).mean() < 0.05
    views = aug.views(batch, mean=(0.5,), std=(0.25,))
    assert views.shape == (36, 1, 32, 32)


def test_distribution_matches_the_pil_path():
    """Per-op and depth frequencies, levels and mean weights agree with DynamicMixup.sample_params."""
    config = "dynmix-windep-p0.3-m5-b1-oimagenet"
    n_pil = 3000
    pil = DynamicMixup(config)
    rng = np.random.default_rng(0)
    draws = [pil.sample_params(rng, (32, 32)) for _ in range(n_pil)]
    aug = DynamicMixupBatch(config)
    bp = aug.sample_params(n_pil // 2, (32, 32), generator=torch.Generator().manual_seed(0))  # 2 views each
    names = aug.config.ops

    pil_ops = [name for d in draws for c in d.chains for name, _ in c]
    codes = bp.code[bp.code >= 0]
    batch_ops = [list(OPS)[int(c)] for c in codes]
    table = np.array([[pil_ops.count(n) for n in names], [batch_ops.count(n) for n in names]])
    assert stats.chi2_contingency(table).pvalue > 1e-3, table

    pil_depth2 = np.mean([len(c) == 2 for d in draws for c in d.chains])
    batch_depth2 = float((bp.depth == 2).double().mean())
    assert abs(pil_depth2 - 0.3) < 5 * math.sqrt(0.21 / (2 * n_pil)) and abs(batch_depth2 - 0.3) < 0.02

    for attr in ("m1", "m2", "blend"):
        a = np.array([getattr(d, attr) for d in draws])
        b = getattr(bp, attr).flatten().numpy()
        assert stats.ks_2samp(a, b).pvalue > 1e-3, attr
        assert abs(a.mean() - b.mean()) < 5 * math.sqrt(1 / 12 / n_pil)  # Beta(1, 1): var 1/12

    pil_levels = np.array([lv for d in draws for c in d.levels for lv in c])
    batch_levels = bp.level[bp.code >= 0].numpy()
    assert stats.ks_2samp(pil_levels, batch_levels).pvalue > 1e-3
    assert 0.1 <= batch_levels.min() and batch_levels.max() < 5.0

    # parameters follow the same level -> parameter formulas, with random signs
    for name in ("rotate", "solarize", "posterize", "translate_y", "downscale"):
        mask = bp.code == list(OPS).index(name)
        got = bp.param[mask]
        expected = OPS[name].magnitude(bp.level[mask], (32, 32))
        torch.testing.assert_close(got.abs(), expected.abs(), rtol=0, atol=0)
        if OPS[name].signed:
            assert 0.4 < float((got < 0).double().mean()) < 0.6


@pytest.mark.parametrize("alpha", [0.01, 0.2, 1.0, 8.0])
def test_beta_weights(alpha):
    aug = DynamicMixupBatch(f"dynmix-a{alpha}")
    m1 = aug.sample_params(20000, (8, 8), generator=torch.Generator().manual_seed(2)).m1.flatten().numpy()
    assert np.isfinite(m1).all() and m1.min() >= 0 and m1.max() <= 1
    numpy_draws = np.random.default_rng(0).beta(alpha, alpha, 20000)  # the PIL path's sampler
    assert stats.ks_2samp(m1, numpy_draws).pvalue > 1e-3
    assert abs(m1.var() - 1 / (4 * (2 * alpha + 1))) < 0.01  # Beta(a, a): variance 1 / (4 (2a + 1))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64, torch.bfloat16])
def test_shapes_and_dtypes(real_images, dtype):
    batch = to_batch(real_images[:10])
    x = batch if dtype == torch.uint8 else (batch.float() / 255).to(dtype)
    outs = DynamicMixupBatch("dynmix-n3")(x, generator=torch.Generator().manual_seed(0))
    assert isinstance(outs, tuple) and len(outs) == 3
    for o in outs:
        assert o.shape == x.shape and o.dtype == dtype and o.device == x.device
        if dtype != torch.uint8:
            assert 0 <= float(o.min()) and float(o.max()) <= 1


def test_uint8_output_is_the_rounded_float_view(real_images):
    """views() keeps the unrounded mix; forward() rounds it: they agree to half a level."""
    batch = to_batch(real_images[:16])
    aug = DynamicMixupBatch()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    x = aug.views(batch, mean, std, generator=torch.Generator().manual_seed(5))
    outs = aug(batch, generator=torch.Generator().manual_seed(5))
    assert x.shape == (48, 3, 32, 32) and x.dtype == torch.float32
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    pixels = (x * s + m) * 255
    torch.testing.assert_close(pixels[:16], batch.float(), atol=1e-3, rtol=0)  # the clean split
    for v in range(2):
        assert (pixels[16 * (v + 1):16 * (v + 2)] - outs[v].float()).abs().max() <= 0.5 + 1e-3


def test_deterministic_and_seed_dependent(real_images):
    batch = to_batch(real_images)
    aug = DynamicMixupBatch(generator=torch.Generator().manual_seed(7))
    a = aug(batch)
    b = DynamicMixupBatch()(batch, generator=torch.Generator().manual_seed(7))
    c = DynamicMixupBatch()(batch, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # the two views differ
    torch.manual_seed(0)
    d = DynamicMixupBatch()(batch)  # default generator of the device: torch.manual_seed reproduces
    torch.manual_seed(0)
    assert torch.equal(d[0], DynamicMixupBatch()(batch)[0])


def test_chunking_does_not_change_the_result(real_images):
    batch = to_batch(real_images)
    aug, chunked = DynamicMixupBatch("dynmix-oimagenet"), DynamicMixupBatch("dynmix-oimagenet", chunk_size=5)
    params = aug.sample_params(len(batch), (32, 32), generator=torch.Generator().manual_seed(4))
    for x, y in zip(aug.apply(batch, params), chunked.apply(batch, params)):
        assert torch.equal(x, y)


def test_per_sample_independence(real_images):
    """64 copies of one image get 64 different views, drawn from many different ops in one call."""
    batch = to_batch([real_images[0]] * 64)
    aug = DynamicMixupBatch(generator=torch.Generator().manual_seed(0))
    params = aug.sample_params(64, (32, 32), generator=torch.Generator().manual_seed(0))
    assert len(set(params.code[0].tolist())) == len(aug.config.ops)
    assert len(set(params.m1[0].tolist())) == 64
    view = aug.apply(batch, params)[0]
    assert len({v.numpy().tobytes() for v in view}) >= 60


def test_device_plumbing_cpu(real_images):
    batch = to_batch(real_images[:4])
    aug = DynamicMixupBatch()
    params = aug.sample_params(4, (32, 32), device="cpu")
    assert params.code.device.type == "cpu" and params.m1.shape == (2, 4)
    g = torch.Generator(device="cpu").manual_seed(0)
    assert aug.sample_params(4, (32, 32), generator=g).code.device.type == "cpu"
    assert aug(batch.to("cpu"), generator=g)[0].device.type == "cpu"
    # a generator on another device than the batch is refused with advice
    with pytest.raises(ValueError, match=r"generator is on cpu but the batch is on cuda:0.*torch.Generator"):
        _check_generator(torch.Generator(), torch.device("cuda", 0))
    assert DynamicMixupBatch().to("cpu") is not None  # an nn.Module without parameters or buffers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(real_images):
    batch = to_batch(real_images)
    aug = DynamicMixupBatch("dynmix-oimagenet")
    g = torch.Generator(device="cuda").manual_seed(0)
    outs = aug(batch.cuda(), generator=g)
    assert all(o.is_cuda and o.dtype == torch.uint8 for o in outs)
    params = aug.sample_params(len(batch), (32, 32), generator=torch.Generator().manual_seed(1))
    cuda_params = type(params)(*(t.cuda() if isinstance(t, torch.Tensor) else t for t in params.__dict__.values()))
    for x, y in zip(aug.apply(batch, params), aug.apply(batch.cuda(), cuda_params)):
        assert (x.float() - y.cpu().float()).abs().mean() < 0.05


def test_views_train_with_jsd_loss(real_images):
    batch = to_batch(real_images[:8])
    labels = torch.arange(8) % 3
    aug = DynamicMixupBatch(generator=torch.Generator().manual_seed(0))
    x = aug.views(batch, mean=(0.5,) * 3, std=(0.5,) * 3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    loss = JsdLoss(num_splits=aug.num_splits)(model(x), labels.repeat(aug.num_splits))
    loss.backward()
    assert torch.isfinite(loss) and model[1].weight.grad is not None


def test_empty_batch():
    outs = DynamicMixupBatch()(torch.zeros(0, 3, 16, 16, dtype=torch.uint8))
    assert [o.shape for o in outs] == [(0, 3, 16, 16)] * 2
    assert DynamicMixupBatch().views(torch.zeros(0, 3, 16, 16)).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("x, exc, match", [
    (torch.zeros(3, 32, 32, dtype=torch.uint8), ValueError, r"4-D batch.*shape \(3, 32, 32\).*unsqueeze\(0\)"),
    (torch.zeros(2, 1, 3, 32, 32, dtype=torch.uint8), ValueError, "got a 5-D tensor"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.int32), ValueError, "uint8 batch .* got dtype torch.int32"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.bool), ValueError, "got dtype torch.bool"),
    (torch.zeros(2, 2, 32, 32, dtype=torch.uint8), ValueError, "1 or 3 channels, got C=2"),
    (torch.zeros(2, 4, 32, 32, dtype=torch.uint8), ValueError, r"C=4.*drop an alpha channel"),
    (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), ValueError, r"C=32.*channels-last, use x.permute\(0, 3, 1, 2\)"),
    (torch.zeros(2, 3, 7, 32, dtype=torch.uint8), ValueError, r"at least 8x8 pixels, got 7x32"),
    (torch.full((2, 3, 32, 32), 255.0), ValueError, r"\[0, 1\], got values in \[255, 255\].*divide 0-255 floats"),
    (torch.full((2, 3, 32, 32), -2.1), ValueError, "run DynMix before normalization"),
    (torch.full((2, 3, 32, 32), math.nan), ValueError, r"\[0, 1\], got values in \[nan, nan\]"),
    (np.zeros((2, 3, 32, 32), np.uint8), TypeError, "expects a torch.Tensor batch .* got ndarray"),
    (Image.new("RGB", (32, 32)), TypeError, r"got Image.*use timm_dynmix.DynamicMixup"),
])
def test_bad_inputs(x, exc, match):
    with pytest.raises(exc, match=match):
        DynamicMixupBatch()(x)


def test_bad_arguments(real_images):
    batch = to_batch(real_images[:2])
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        DynamicMixupBatch(generator=0)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        DynamicMixupBatch()(batch, generator=3)
    with pytest.raises(ValueError, match="chunk_size must be None or an integer >= 1, got 0"):
        DynamicMixupBatch(chunk_size=0)
    with pytest.raises(ValueError, match="unknown section"):
        DynamicMixupBatch("dynmix-q3")
    with pytest.raises(ValueError, match=r"mean needs 1 or 3 values for a 3-channel batch, got \[0.5, 0.5\]"):
        DynamicMixupBatch().views(batch, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"mean needs 1 or 1 values for a 1-channel batch"):
        DynamicMixupBatch().views(batch[:, :1])  # ImageNet's 3 means on a grayscale batch
    with pytest.raises(ValueError, match="std must be positive"):
        DynamicMixupBatch().views(batch, std=(0.0,))
    with pytest.raises(ValueError, match=r"params were drawn for 3 images of \(32, 32\), got a batch of shape"):
        aug = DynamicMixupBatch()
        aug.apply(batch, aug.sample_params(3, (32, 32)))
    with pytest.raises(ValueError, match="unknown DynMix op 'blur'"):
        apply_op("blur", batch)


def test_repr_and_properties():
    aug = DynamicMixupBatch("dynmix-n3-windep")
    assert repr(aug) == "DynamicMixupBatch('dynmix-m3-d2-p0.5-a1-windep-b0-n3-ocifar')"
    assert aug.num_mixes == 3 and aug.num_splits == 4
