"""PrimeBatch: config strings, determinism, per-sample draws, shapes and errors, and fidelity to the original PRIME.

Reference figures. They were measured by running the original PRIME code (github.com/amodas/PRIME-augmentations,
commit 0290f6be3771: ``utils/prime.py`` ``GeneralizedPRIMEModule`` + ``PRIMEAugModule``, ``utils/diffeomorphism.py``
``Diffeo``, ``utils/color_jitter.py`` ``RandomSmoothColor``, ``utils/rand_filter.py`` ``RandomFilter``, built as
its ``train.py`` builds them from ``config/cifar10_cfg.py``: diffeo sT = rT = scut = rcut = 1, cutmin 2, cutmax
100, alpha 1, stochastic; color cut 100, T 0.01, no bandwidth, stochastic; filter k 3, sigma 4, stochastic;
mixture_width 3, mixture_depth -1, max_depth 3) with the identity as ``preprocess`` (the mix in [0, 1]; the
reference's normalized mix is the same up to the affine map), in float32 on a CPU, one image per call
(``torch.manual_seed(1000 * rep + 7)``, 4 repeats of 256 calls). One image per call makes the reference draw its
per-call parameters (sigma, the field, the color cut/T) for that image alone, which is exactly the distribution of
one view that ``PrimeBatch`` draws per image. Inputs: the first 256 CIFAR-10 test images, and the 64 synthetic
images of :func:`synthetic_batch` (each 4 times per repeat), as floats ``uint8 / 255``. "Only one family": the
reference's ``PRIMEAugModule`` given that primitive alone. "Center": the reference with its filter's delta moved to
``[k // 2, k // 2]`` (one line changed, ``center = kernel_size // 2``), as our default ``icenter``.

Statistics of a view v of a clean image x (both in [0, 1]), each averaged over all views: ``mad`` = mean |v - x|
over the pixels; ``gain`` = std(v) / std(x); ``slope`` = cov(v, x) / var(x) (how much of the clean image a view
keeps).

Tolerance: a figure is a mean over views; our mean over ``n`` views and the reference's over 1024 differ by sampling
noise of standard deviation ``s * sqrt(1 / n + 1 / 1024)``, with ``s`` the spread of the statistic over single views
(measured on our views; the same for both sides if the distributions agree). A test allows 4 such deviations. The
spread is large (the filter's sigma alone ranges over [0, 4]: ``s`` is 0.2 to 0.3 for ``slope``), so these tests
catch errors of about 5 to 10 % of a figure (a wrong temperature range or cut distribution, drawing the per-step
parameters per chain instead of sharing them across a view's chains as the reference does (it lowered ``mad`` of
the spatial family by 12 % before it was fixed), a missing clip), not the filter's delta position: corner and
center differ by 2 to 6 % (see ``test_identity_tap`` for an exact test of it). With 1024 views of each and these
statistics, our ``slope`` was within 0.7 standard deviations of the reference for the spectral family and the full
PRIME, corner and center alike (synthetic images).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import CIFAR10_TEST, cifar10_test_arrays

from timm_dynmix.augment.prime import (
    FAMILIES,
    PrimeBatch,
    PrimeConfig,
    PrimeParams,
    color,
    displacement,
    hashed_normal,
    parse_prime_config,
)
from timm_dynmix.rng import derive_seed

# measured with the reference as described in the module docstring (means over its 1024 views)
REFERENCE_SYNTHETIC = {
    "all_corner": {"mad": 0.1176, "gain": 0.8213, "slope": 0.7137},
    "all_center": {"mad": 0.1143, "gain": 0.8328, "slope": 0.7346},
    "spectral_corner": {"mad": 0.1762, "gain": 0.6686, "slope": 0.5192},
    "spectral_center": {"mad": 0.1705, "gain": 0.6830, "slope": 0.5540},
    "spatial": {"mad": 0.0419, "gain": 0.9289, "slope": 0.8866},
    "color": {"mad": 0.0927, "gain": 1.0143, "slope": 0.8725},
}
REFERENCE_CIFAR10 = {
    "all_corner": {"mad": 0.1133, "gain": 0.8878, "slope": 0.7412},
    "all_center": {"mad": 0.1119, "gain": 0.8909, "slope": 0.7511},
    "spectral_corner": {"mad": 0.1666, "gain": 0.7247, "slope": 0.5450},
    "spectral_center": {"mad": 0.1635, "gain": 0.7321, "slope": 0.5628},
    "spatial": {"mad": 0.0251, "gain": 0.9513, "slope": 0.9212},
    "color": {"mad": 0.0903, "gain": 1.1016, "slope": 0.8820},
}
# RMS displacement (pixels) of the reference Diffeo's fields on a 32x32 image, sqrt(mean(dx^2 + dy^2) / 2) per
# field, averaged over 20,000 calls (torch.manual_seed(3)); standard error of that mean 0.0049
REFERENCE_DISPLACEMENT_RMS_32 = (0.6461, 0.0049)
REFERENCE_VIEWS = 1024  # views behind every reference figure (4 repeats of 256 calls)
CONFIGS = {"all_corner": "prime-icorner", "all_center": "prime", "spectral_corner": "prime-ospectral-icorner",
           "spectral_center": "prime-ospectral", "spatial": "prime-ospatial", "color": "prime-ocolor"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: one intra-op thread is many times faster on a shared machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_batch(n: int = 64, size: int = 32) -> torch.Tensor:
    """A deterministic uint8 batch (n, 3, size, size) of sine gratings (the reference ran on the same formula)."""
    b = torch.arange(n, dtype=torch.float64).view(n, 1, 1, 1)
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    i = torch.arange(size, dtype=torch.float64).view(1, 1, size, 1)
    j = torch.arange(size, dtype=torch.float64).view(1, 1, 1, size)
    f1 = 1 + (b % 5)
    f2 = (b * 7 + c * 3) % 4
    phase = 0.9 * b + 2.1 * c
    v = (0.5 + 0.35 * torch.sin(2 * math.pi * (f1 * i + f2 * j) / size + phase)
         + 0.1 * torch.cos(math.pi * (i - j) * (c + 1) / size))
    return (v.clamp(0, 1) * 255).round().to(torch.uint8)


def view_stats(x: torch.Tensor, views: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Per-view ``mad``, ``gain`` and ``slope`` (see the module docstring) of float views of a float batch."""
    flat = x.flatten(1)
    xc = flat - flat.mean(1, keepdim=True)
    out: dict[str, list[torch.Tensor]] = {"mad": [], "gain": [], "slope": []}
    for v in views:
        vf = v.flatten(1)
        out["mad"].append((vf - flat).abs().mean(1))
        out["gain"].append(vf.std(1) / flat.std(1))
        out["slope"].append((xc * (vf - vf.mean(1, keepdim=True))).sum(1) / (xc * xc).sum(1))
    return {k: torch.cat(v).double() for k, v in out.items()}


def check_fidelity(x_u8: torch.Tensor, reference: dict, name: str, views: int, seed: int) -> None:
    x = x_u8.float() / 255
    aug = PrimeBatch(f"{CONFIGS[name]}-n{views}")
    ours = view_stats(x, aug(x, generator=torch.Generator().manual_seed(seed)))
    for stat, ref in reference[name].items():
        values = ours[stat]
        tol = 4.0 * float(values.std()) * math.sqrt(1 / values.numel() + 1 / REFERENCE_VIEWS)
        assert abs(float(values.mean()) - ref) <= tol, (name, stat, float(values.mean()), ref, tol)


# ----------------------------------------------------------------------------------------------------------------
# config
def test_presets_are_the_reference_configs():
    c = parse_prime_config("prime")
    assert (c.width, c.max_depth, c.num_mixes, c.jsd_weight, c.families) == (3, 3, 2, 12.0, FAMILIES)
    assert (c.kernel_size, c.sigma, c.diffeo_cut, c.color_cut, c.color_temp, c.color_band) == (3, 4.0, 100, 100,
                                                                                                  0.01, 0)
    i = parse_prime_config("prime-imagenet")
    assert (i.diffeo_cut, i.color_cut, i.color_temp, i.color_band) == (500, 500, 0.05, 20)
    assert parse_prime_config("prime-imagenet-n1-j0") == PrimeConfig(num_mixes=1, jsd_weight=0, diffeo_cut=500,
                                                                      color_cut=500, color_temp=0.05, color_band=20)


@pytest.mark.parametrize("text", ["prime", "prime-imagenet", "prime-w2-d1-n3-j6.5-ocolor.spectral-k5-s0.5-icorner",
                                  "prime-ospatial-m3-r1-t1-b7", "prime-t0.00001"])
def test_config_round_trip(text):
    c = parse_prime_config(text)
    s = c.to_string()
    assert s.startswith("prime-w") and not re.search(r"\de-\d", s)  # positional notation
    assert parse_prime_config(s) == c
    assert str(c) == s and parse_prime_config(c) is c


def test_config_canonical_string():
    assert parse_prime_config("prime").to_string() == (
        "prime-w3-d3-n2-j12-ospectral.spatial.color-k3-s4-icenter-m100-r100-t0.01-b0")
    assert parse_prime_config("prime-ocolor.spectral").families == ("spectral", "color")  # canonical order


@pytest.mark.parametrize("text, words", [
    ("prime-z3", ["'z3'", "known keys"]), ("prime-w0", ["width", "[1, 8]"]), ("prime-w2.5", ["width", "integer"]),
    ("prime-k4", ["kernel_size", "odd"]), ("prime-ofoo", ["foo", "spectral"]),
    ("prime-ocolor.color", ["repeated"]), ("prime-w2-w3", ["twice"]), ("prime-sx", ["'s'", "number"]),
    ("prime-t0", ["color_temp", "(0, 1]"]), ("prime-m2", ["diffeo_cut", "[3, 1000]"]),
    ("prime-iedge", ["identity", "center"]), ("prime-k1-icorner", ["outside"]), ("augmix", ["prime"]),
    ("prime-n2-imagenet", ["imagenet", "right after"]), ("prime-j-1", ["'j'"]),
])
def test_config_errors_name_the_problem(text, words):
    with pytest.raises(ValueError) as err:
        parse_prime_config(text)
    for w in words:
        assert w in str(err.value)


def test_config_type_errors():
    with pytest.raises(TypeError):
        parse_prime_config(3)
    with pytest.raises(TypeError):
        PrimeConfig(width="3")


# ----------------------------------------------------------------------------------------------------------------
# behaviour
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_shapes_and_dtypes(dtype):
    x = synthetic_batch(4)
    x = x if dtype == torch.uint8 else (x.to(dtype) / 255)
    aug = PrimeBatch("prime-n3")
    out = aug(x, generator=torch.Generator().manual_seed(0))
    assert len(out) == 3 == aug.num_mixes and aug.num_splits == 4
    for v in out:
        assert v.shape == x.shape and v.dtype == dtype
        if dtype != torch.uint8:
            assert float(v.min()) >= 0 and float(v.max()) <= 1
    assert not torch.equal(out[0], x) and not torch.equal(out[0], out[1])


def test_uint8_views_are_the_rounded_float_views():
    x = synthetic_batch(3)
    aug = PrimeBatch()
    p = aug.sample_params(3, (32, 32), generator=torch.Generator().manual_seed(1))
    u = aug.apply(x, p)
    f = aug.apply(x.float() / 255, p)
    for a, b in zip(u, f):
        assert (a.float() - (b * 255).round()).abs().max() <= 1  # float32 rounding at .5 ties


def test_views_layout_and_normalization():
    x = synthetic_batch(3)
    aug = PrimeBatch()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    v = aug.views(x, mean, std, seed=5, epoch=2, indices=[7, 8, 9])
    assert v.shape == (9, 3, 32, 32) and v.dtype == torch.float32
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(v[:3], (x.float() / 255 - m) / s)
    mixes = aug(x.float() / 255, seed=5, epoch=2, indices=[7, 8, 9])
    torch.testing.assert_close(v[3:6], (mixes[0] - m) / s)
    torch.testing.assert_close(v[6:], (mixes[1] - m) / s)


def test_determinism():
    x = synthetic_batch(4)
    aug = PrimeBatch()
    a = aug(x, seed=3, epoch=1, indices=[10, 11, 12, 13])
    b = aug(x, seed=3, epoch=1, indices=torch.tensor([10, 11, 12, 13]))
    c = aug(x, seed=3, epoch=2, indices=[10, 11, 12, 13])
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert all(torch.equal(u, v) for u, v in zip(aug(x, g1), aug(x, g2)))
    assert torch.equal(PrimeBatch(generator=torch.Generator().manual_seed(4))(x)[1], aug(x, g1.manual_seed(4))[1])


def test_per_sample_draws_do_not_depend_on_the_batch():
    x = synthetic_batch(5)
    aug = PrimeBatch()
    together = aug(x, seed=9, epoch=3, indices=[40, 41, 42, 43, 44])
    alone = aug(x[2:3], seed=9, epoch=3, indices=[42])
    reordered = aug(x[[4, 2]], seed=9, epoch=3, indices=[44, 42])
    for k in range(aug.num_mixes):
        assert torch.equal(together[k][2:3], alone[k])
        assert torch.equal(together[k][2:3], reordered[k][1:2])
    # image 2, view 0 draws from derive_seed(seed, epoch, index, view + 1, split="prime") alone
    p = aug.sample_params(1, (32, 32), seed=9, epoch=3, indices=[42])
    g = torch.Generator().manual_seed(derive_seed(9, 3, 42, 1, split="prime"))
    first = torch.rand((1, 3), dtype=torch.float64, generator=g)  # the chains' depths come first
    assert torch.equal(p.depth[:3], 1 + (first.view(3) * 3).floor().long())


def test_sample_params_distribution():
    aug = PrimeBatch()
    p = aug.sample_params(2000, (32, 32), generator=torch.Generator().manual_seed(0))
    assert isinstance(p, PrimeParams) and p.batch_size == 2000 and p.num_mixes == 2 and p.width == 3
    for v in (1, 2, 3):
        assert abs(float((p.depth == v).float().mean()) - 1 / 3) < 0.02
        assert abs(float((p.family == v - 1).float().mean()) - 1 / 3) < 0.02
    torch.testing.assert_close(p.weights.sum(-1), torch.ones(2, 2000))
    assert 0.48 < float(p.skip.mean()) < 0.52 and 1.9 < float(p.sigma.mean()) < 2.1
    noise = p.kernel.clone()
    noise[..., 1, 1] -= 1.0  # the delta sits at the centre by default
    assert abs(float((noise / p.sigma[..., None, None]).std()) - 1) < 0.02
    assert int(p.diffeo_cut.min()) >= 2 and int(p.diffeo_cut.max()) <= 100
    assert int(p.color_cut.min()) >= 1 and int(p.color_cut.max()) <= 100 and bool((p.color_k0 == 1).all())
    beyond = torch.arange(100).view(1, 1, 1, 100) >= p.color_cut[..., None, None]
    assert bool((p.color_coeff[beyond.expand_as(p.color_coeff)] == 0).all())
    # the chains of one view share sigma, the field and the color cut/T at every step, like the reference's batch
    s = p.sigma.view(3, 2, 3, 2000)
    assert torch.equal(s[:, :, 0], s[:, :, 2]) and not torch.equal(s[:, 0], s[:, 1])
    band = PrimeBatch("prime-imagenet").sample_params(500, (64, 64), generator=torch.Generator().manual_seed(0))
    assert band.color_coeff.shape[-1] == 20 and bool((band.color_k0 <= band.color_cut).all())


def test_identity_tap():
    """With sigma 0 the filter is its delta: the identity (default) or the reference's one-pixel shift."""
    x = synthetic_batch(4)
    xf = x.float() / 255
    same = PrimeBatch("prime-ospectral-s0")(xf, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(same[0], xf)
    aug = PrimeBatch("prime-ospectral-s0-icorner-w1-d1-n1")
    p = aug.sample_params(4, (32, 32), generator=torch.Generator().manual_seed(0))
    shifted = torch.zeros_like(xf)
    shifted[..., :-1, :-1] = xf[..., 1:, 1:]  # conv2d reads [i + 1, j + 1]; zero padding at the far edges
    m = p.skip.view(4, 1, 1, 1)
    torch.testing.assert_close(aug.apply(xf, p)[0], (1 - m) * xf + m * shifted)


def test_hashed_normal():
    z = hashed_normal(torch.tensor([[1], [2], [3 << 40]]), torch.arange(100_000))
    assert z.shape == (3, 100_000) and z.dtype == torch.float32
    assert float(z.mean(1).abs().max()) < 0.02 and float((z.std(1) - 1).abs().max()) < 0.02
    assert float((z[0] * z[1]).mean().abs()) < 0.02 and float((z[0, ::2] * z[0, 1::2]).mean().abs()) < 0.02
    assert torch.equal(hashed_normal(torch.tensor(2), torch.arange(5, 9)), z[1, 5:9])


def test_errors():
    aug = PrimeBatch()
    x = synthetic_batch(2)
    with pytest.raises(TypeError):
        aug(x.numpy())
    with pytest.raises(ValueError, match="4-D"):
        aug(x[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(x.float())
    with pytest.raises(ValueError, match=r"channels-last|C="):
        aug(x.permute(0, 2, 3, 1).contiguous())
    with pytest.raises(ValueError, match="one dataset index per image"):
        aug(x, seed=0, indices=[1])
    with pytest.raises(ValueError, match="need a seed"):
        aug(x, indices=[1, 2])
    with pytest.raises(ValueError, match="not both"):
        aug(x, torch.Generator(), seed=0)
    with pytest.raises(ValueError, match="integers"):
        aug(x, seed=0, indices=[0.5, 1])
    with pytest.raises(ValueError, match="drawn for"):
        aug.apply(synthetic_batch(3), aug.sample_params(2, (32, 32)))
    with pytest.raises(ValueError, match="drawn for"):
        PrimeBatch("prime-w2").apply(x, aug.sample_params(2, (32, 32)))
    with pytest.raises(ValueError, match="drawn for"):
        PrimeBatch("prime-k5").apply(x, aug.sample_params(2, (32, 32)))
    with pytest.raises(TypeError):
        PrimeBatch(generator=0)
    with pytest.raises(ValueError, match="std"):
        aug.views(x, (0.5,), (0.0,), seed=0)


# ----------------------------------------------------------------------------------------------------------------
# fidelity to the original PRIME (figures and tolerance: see the module docstring)
@pytest.mark.parametrize("name, views", [("all_corner", 2), ("all_center", 2), ("spectral_corner", 8),
                                         ("spectral_center", 8), ("spatial", 4), ("color", 2)])
def test_fidelity_synthetic(name, views):
    check_fidelity(synthetic_batch(64), REFERENCE_SYNTHETIC, name, views, seed=11)


@pytest.mark.skipif(not CIFAR10_TEST.is_file(), reason="CIFAR-10 copy not found at ../shared/data/cifar10")
@pytest.mark.parametrize("name, views", [("all_corner", 1), ("all_center", 1), ("spectral_corner", 4),
                                         ("spectral_center", 4), ("spatial", 1), ("color", 1)])
def test_fidelity_cifar10(name, views):
    x, _ = cifar10_test_arrays(128)
    check_fidelity(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), REFERENCE_CIFAR10, name, views, seed=12)


def test_displacement_matches_reference():
    """RMS displacement of the spatial primitive's fields, as drawn by ``sample_params``, on 32x32 images."""
    aug = PrimeBatch("prime-ospatial-w1-d1-n1")
    p = aug.sample_params(1000, (32, 32), generator=torch.Generator().manual_seed(0))
    dx, dy = displacement(p.diffeo_cut[0], p.diffeo_temp[0], p.diffeo_key[0], (32, 32), 100)
    rms = torch.sqrt((dx**2 + dy**2).mean((1, 2)) / 2)
    ref, se = REFERENCE_DISPLACEMENT_RMS_32
    ours_se = float(rms.std()) / math.sqrt(rms.numel())
    assert abs(float(rms.mean()) - ref) <= 4 * math.hypot(se, ours_se), (float(rms.mean()), ref)


@pytest.mark.parametrize("config", ["prime-ocolor-d1", "prime-ocolor-b5-r30", "prime"])
def test_color_lookup_of_uint8_levels_equals_the_per_pixel_sum(config):
    """Step 0 on a uint8 batch evaluates the color sum per level (256 values) and looks the pixels up: the views
    are those of the per-pixel evaluation (the same images as floats in [0, 1], which take the per-pixel path)."""
    x = synthetic_batch(12)
    aug = PrimeBatch(config)
    lookup = aug.views(x, generator=torch.Generator().manual_seed(4))
    per_pixel = aug.views(x.float() / 255, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(lookup, per_pixel, rtol=0, atol=1e-5)


def _hashed_normal_int64(key: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """``hashed_normal``'s definition in 64-bit integer arithmetic (no reliance on int32 wrap-around)."""
    m32 = 0xFFFFFFFF

    def mul32(x: torch.Tensor, c: int) -> torch.Tensor:
        return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & m32

    def hash32(x: torch.Tensor) -> torch.Tensor:
        x = mul32(x ^ (x >> 16), 0x7FEB352D)
        x = mul32(x ^ (x >> 15), 0x846CA68B)
        return x ^ (x >> 16)

    def uniform(c: torch.Tensor) -> torch.Tensor:
        return ((hash32(hash32(c ^ (key & m32)) ^ ((key >> 32) & m32)) >> 8).double() + 0.5) / (1 << 24)

    pair = counter >> 1
    radius = torch.sqrt(-2.0 * torch.log(uniform(2 * pair)))
    angle = 2.0 * math.pi * uniform(2 * pair + 1) - (counter & 1).double() * (0.5 * math.pi)
    return (radius * torch.cos(angle)).float()


def test_hashed_normal_matches_its_64_bit_definition():
    """The int32 hash (products wrapping modulo 2**32) gives the numbers of the 64-bit formula."""
    g = torch.Generator().manual_seed(5)
    key = torch.cat([torch.tensor([0, 1, (1 << 62) - 1, (1 << 32) - 1, 1 << 31]),
                     torch.randint(0, 1 << 62, (59,), generator=g)]).view(-1, 1)
    counter = torch.cat([torch.arange(4099), torch.randint(0, 1 << 31, (997,), generator=g)])
    torch.testing.assert_close(hashed_normal(key, counter), _hashed_normal_int64(key, counter), rtol=0, atol=1e-6)


def _displacement_direct(cut: torch.Tensor, temp: torch.Tensor, key: torch.Tensor, size: tuple[int, int],
                         max_cut: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fields as the plain double sum over modes ``(i, j)``, one sample at a time, in float64."""
    h, w = size
    xs, ys = torch.linspace(0, 1, w, dtype=torch.float64), torch.linspace(0, 1, h, dtype=torch.float64)
    out = torch.zeros(2, cut.numel(), h, w, dtype=torch.float64)
    for s in range(cut.numel()):
        c = int(cut[s])
        i = torch.arange(1, c + 1)
        ii, jj = torch.meshgrid(i, i, indexing="ij")
        r = torch.sqrt((ii**2 + jj**2).double())
        inside = r < c + 0.5
        for f, scale in ((0, w), (1, h)):
            coeff = hashed_normal(key[s], (f * max_cut + ii - 1) * max_cut + jj - 1).double() / r * inside
            sin_x = torch.sin(math.pi * xs[:, None] * i[None].double())  # (W, c)
            sin_y = torch.sin(math.pi * ys[:, None] * i[None].double())  # (H, c)
            u = torch.einsum("ij,xi,yj->yx", coeff, sin_x, sin_y)
            out[f, s] = u * math.sqrt(float(temp[s])) * scale
    return out[0], out[1]


@pytest.mark.parametrize("max_cut, size", [(100, (32, 32)), (37, (20, 28))])
def test_displacement_equals_the_direct_sum(max_cut, size):
    """The bucketed matrix products (and, for an even max_cut, the pairwise hashing) equal the plain sum."""
    g = torch.Generator().manual_seed(max_cut)
    m = 12
    cut = torch.randint(2, max_cut + 1, (m,), generator=g)
    cut[:3] = torch.tensor([2, max_cut, max_cut - 1])  # the smallest and largest cuts, an odd and an even one
    temp = torch.rand(m, dtype=torch.float64, generator=g) * 1e-3
    key = torch.randint(0, 1 << 62, (m,), generator=g)
    fast = displacement(cut, temp, key, size, max_cut, budget=20_000)  # a small budget: groups run in parts
    direct = _displacement_direct(cut, temp, key, size, max_cut)
    for a, b in zip(fast, direct):
        assert a.shape == (m, *size) and a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=0, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("band", [0, 7])
def test_color_equals_the_direct_sum(band):
    """Clenshaw's recurrence over the sorted images gives the direct sum of sines (float64), 1e-4 after clipping."""
    g = torch.Generator().manual_seed(band)
    m, length = 40, band or 100
    x = torch.rand(m, 3, 9, 11, generator=g)
    cut = torch.randint(1, 101, (m,), generator=g)
    cut[:2] = torch.tensor([1, 100])
    k0 = (torch.rand(m, generator=g) * cut).floor().long() + 1 if band else torch.ones(m, dtype=torch.long)
    coeff = torch.randn(m, 3, length, generator=g) * torch.rand(m, 1, 1, generator=g).mul(0.01).sqrt()
    freq = k0[:, None] + torch.arange(length)
    coeff = coeff * (freq <= cut[:, None])[:, None, :]
    coeff[5] = 0  # an image without an active frequency
    t = x.double() * math.pi
    k = (k0.view(-1, 1, 1, 1, 1) + torch.arange(length).view(1, 1, -1, 1, 1)).double()
    direct = x.double() + (coeff.double()[..., None, None] * torch.sin(k * t[:, :, None])).sum(2)
    torch.testing.assert_close(color(x, coeff, k0).double(), direct.clamp(0, 1), rtol=0, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    """Per-sample params drawn on the CPU give the same views on a GPU (float32 arithmetic aside)."""
    x = synthetic_batch(6)
    aug = PrimeBatch()
    key = torch.tensor([[5], [1 << 61]])
    torch.testing.assert_close(hashed_normal(key.cuda(), torch.arange(1000, device="cuda")).cpu(),
                               hashed_normal(key, torch.arange(1000)), rtol=1e-6, atol=1e-6)  # same integers
    cpu = aug(x, seed=2, epoch=1, indices=list(range(6)))
    gpu = aug(x.cuda(), seed=2, epoch=1, indices=list(range(6)))
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda" and (a.float() - b.cpu().float()).abs().mean() < 0.05
    g = torch.Generator("cuda").manual_seed(0)
    v = aug.views(x.cuda(), (0.5,) * 3, (0.5,) * 3, g)
    assert v.shape == (18, 3, 32, 32) and v.device.type == "cuda"
