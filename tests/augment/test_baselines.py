"""The papers' baselines: the official AugMix (checked against the official definitions), AA* and Random AA*."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from timm_dynmix.augment.baselines import (
    AUGMIX_OPS,
    OVERLAPPING_OPS,
    RANDOM_AA_OPS,
    AugMix,
    AugMixConfig,
    AutoAugmentStar,
    RandomAutoAugmentStar,
    aa_star_policy,
    augmix_mix,
    format_augmix_config,
    parse_augmix_config,
)
from timm_dynmix.data import DynMixDataset, create_transform
from timm_dynmix.train import TrainConfig, train
from timm_dynmix.train.data import train_transform

OFFICIAL_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
                "translate_y")
TINY = {"max_train_samples": 48, "max_eval_samples": 16, "batch_size": 16, "epochs": 1, "num_workers": 0}


def _noise_image(size: int = 32, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, len(mode))
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


# ---------------------------------------------------------------------------------------------------------------
# The official AugMix written out from google-research/augmix (augmentations.py, cifar.py `aug`), with an explicit
# numpy Generator in place of the global RNG: the same draws in the same order.
def _int_parameter(level, maxval):
    return int(level * maxval / 10)


def _float_parameter(level, maxval):
    return float(level) * maxval / 10.


def _official_ops(image_size):
    bil = Image.BILINEAR

    def sample_level(n, rng):
        return rng.uniform(low=0.1, high=n)

    def autocontrast(img, _, rng):
        return ImageOps.autocontrast(img)

    def equalize(img, _, rng):
        return ImageOps.equalize(img)

    def posterize(img, level, rng):
        return ImageOps.posterize(img, 4 - _int_parameter(sample_level(level, rng), 4))

    def rotate(img, level, rng):
        degrees = _int_parameter(sample_level(level, rng), 30)
        if rng.uniform() > 0.5:
            degrees = -degrees
        return img.rotate(degrees, resample=bil)

    def solarize(img, level, rng):
        return ImageOps.solarize(img, 256 - _int_parameter(sample_level(level, rng), 256))

    def affine(img, coeffs):
        return img.transform((image_size, image_size), Image.AFFINE, coeffs, resample=bil)

    def shear_x(img, level, rng):
        level = _float_parameter(sample_level(level, rng), 0.3)
        if rng.uniform() > 0.5:
            level = -level
        return affine(img, (1, level, 0, 0, 1, 0))

    def shear_y(img, level, rng):
        level = _float_parameter(sample_level(level, rng), 0.3)
        if rng.uniform() > 0.5:
            level = -level
        return affine(img, (1, 0, 0, level, 1, 0))

    def translate_x(img, level, rng):
        level = _int_parameter(sample_level(level, rng), image_size / 3)
        if rng.random() > 0.5:
            level = -level
        return affine(img, (1, 0, level, 0, 1, 0))

    def translate_y(img, level, rng):
        level = _int_parameter(sample_level(level, rng), image_size / 3)
        if rng.random() > 0.5:
            level = -level
        return affine(img, (1, 0, 0, 0, 1, level))

    return [autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y]


def _official_aug(image, rng, severity=3, width=3, depth=-1, alpha=1.0):
    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    aug_list = _official_ops(image.size[0])
    ws = np.float32(rng.dirichlet([alpha] * width))
    m = np.float32(rng.beta(alpha, alpha))
    mix = torch.zeros_like(preprocess(image))
    for i in range(width):
        image_aug = image.copy()
        d = depth if depth > 0 else rng.integers(1, 4)
        for _ in range(d):
            op = aug_list[rng.integers(len(aug_list))]
            image_aug = op(image_aug, severity, rng)
        mix += ws[i] * preprocess(image_aug)
    return (1 - m) * preprocess(image) + m * mix


# ---------------------------------------------------------------------------------------------------------------
def test_augmix_op_list_is_the_official_one():
    assert tuple(AUGMIX_OPS) == OFFICIAL_OPS
    assert not {"color", "contrast", "brightness", "sharpness", "flip_h", "flip_v", "downscale"} & set(AUGMIX_OPS)


@pytest.mark.parametrize("level", [0.1, 0.55, 1.0, 1.7, 2.5, 2.99, 3.0, 7.3, 9.99])
@pytest.mark.parametrize("size", [(32, 32), (224, 224), (48, 40)])
def test_augmix_parameters_follow_the_official_formulas(level, size):
    expected = {
        "rotate": _int_parameter(level, 30),
        "shear_x": _float_parameter(level, 0.3),
        "shear_y": _float_parameter(level, 0.3),
        "translate_x": _int_parameter(level, size[0] / 3),
        "translate_y": _int_parameter(level, size[1] / 3),
        "posterize": 4 - _int_parameter(level, 4),
        "solarize": 256 - _int_parameter(level, 256),
    }
    for name, value in expected.items():
        assert AUGMIX_OPS[name].magnitude(level, size) == value, name
    assert AUGMIX_OPS["autocontrast"].magnitude is None and AUGMIX_OPS["equalize"].magnitude is None
    assert {name for name, op in AUGMIX_OPS.items() if op.signed} == {"rotate", "shear_x", "shear_y", "translate_x",
                                                                      "translate_y"}


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_augmix_op_images_equal_the_official_pil_calls(mode, real_images):
    imgs = [real_images[0].convert(mode), _noise_image(32, 1, mode)]
    bil = Image.BILINEAR
    cases = {
        "autocontrast": [(0.0, lambda im: ImageOps.autocontrast(im))],
        "equalize": [(0.0, lambda im: ImageOps.equalize(im))],
        "posterize": [(b, lambda im, b=b: ImageOps.posterize(im, b)) for b in (1, 2, 3, 4)],
        "solarize": [(t, lambda im, t=t: ImageOps.solarize(im, t)) for t in (256, 205, 180, 0)],
        "rotate": [(d, lambda im, d=d: im.rotate(d, resample=bil)) for d in (-9, -3, 1, 8)],
        "shear_x": [(s, lambda im, s=s: im.transform((32, 32), Image.AFFINE, (1, s, 0, 0, 1, 0), resample=bil))
                    for s in (-0.09, -0.02, 0.05, 0.3)],
        "shear_y": [(s, lambda im, s=s: im.transform((32, 32), Image.AFFINE, (1, 0, 0, s, 1, 0), resample=bil))
                    for s in (-0.09, 0.05)],
        "translate_x": [(t, lambda im, t=t: im.transform((32, 32), Image.AFFINE, (1, 0, t, 0, 1, 0), resample=bil))
                        for t in (-3, -1, 2, 10)],
        "translate_y": [(t, lambda im, t=t: im.transform((32, 32), Image.AFFINE, (1, 0, 0, 0, 1, t), resample=bil))
                        for t in (-3, 2)],
    }
    assert set(cases) == set(AUGMIX_OPS)
    for img in imgs:
        for name, variants in cases.items():
            for param, official in variants:
                ours = np.asarray(AUGMIX_OPS[name].apply(img, param))
                assert np.array_equal(ours, np.asarray(official(img))), (name, param)


def test_augmix_translations_move_whole_pixels_and_shear_about_the_corner():
    img = _noise_image(32, 2)
    moved = np.asarray(AUGMIX_OPS["translate_x"].apply(img, 3.0))
    assert np.array_equal(moved[:, :-3], np.asarray(img)[:, 3:])  # + moves the content left, no blur
    line = np.zeros((32, 32), np.uint8)
    line[:, 20] = 255
    sheared = np.asarray(AUGMIX_OPS["shear_x"].apply(Image.fromarray(line), 0.3)).astype(int)
    # about the top-left corner: row y moves by -0.3 * y (the top row stays, the content also shifts left)
    assert sheared[0].argmax() == 20 and sheared[20].argmax() == 14 and sheared[30].argmax() == 11


@pytest.mark.parametrize("kwargs, size", [
    ({}, 32),
    ({"severity": 1, "width": 2, "depth": 2, "alpha": 0.5}, 32),
    ({"severity": 10, "width": 4, "depth": 3}, 48),
])
def test_augmix_equals_the_official_algorithm(kwargs, size, real_images):
    images = [_noise_image(size, 3)] + ([real_images[i] for i in range(4)] if size == 32 else [])
    norm = transforms.Normalize([0.5] * 3, [0.5] * 3)
    cfg = AugMixConfig(**kwargs)
    ours = AugMix(cfg)
    official_kwargs = {"severity": cfg.severity, "width": cfg.width, "depth": cfg.depth or -1, "alpha": cfg.alpha}
    for seed in range(12):
        img = images[seed % len(images)]
        expected = _official_aug(img, np.random.default_rng(seed), **official_kwargs)
        got = norm(ours(img, rng=np.random.default_rng(seed)))
        assert torch.allclose(got, expected, atol=2e-6), (seed, (got - expected).abs().max())


def test_augmix_chain_widths_depths_and_weights_are_distributed_as_officially():
    aug = AugMix("augmix")
    rng = np.random.default_rng(0)
    draws = [aug.sample_params(rng, (32, 32)) for _ in range(3000)]
    assert all(len(p.chains) == 3 and len(p.weights) == 3 for p in draws)
    depths = Counter(len(chain) for p in draws for chain in p.chains)
    assert set(depths) == {1, 2, 3} and all(abs(depths[d] / 9000 - 1 / 3) < 0.03 for d in (1, 2, 3))
    weights = np.array([p.weights for p in draws])
    assert np.allclose(weights.sum(1), 1.0, atol=1e-6) and (weights >= 0).all()
    # Dirichlet(1, 1, 1): each weight has mean 1/3 and variance 2/36; Beta(1, 1): mean 1/2, variance 1/12
    assert np.allclose(weights.mean(0), 1 / 3, atol=0.02) and np.allclose(weights.var(0), 2 / 36, atol=0.008)
    skips = np.array([p.skip for p in draws])
    assert abs(skips.mean() - 0.5) < 0.02 and abs(skips.var() - 1 / 12) < 0.008
    ops = Counter(name for p in draws for chain in p.chains for name, _ in chain)
    total = sum(ops.values())
    assert set(ops) == set(OFFICIAL_OPS) and all(abs(n / total - 1 / 9) < 0.015 for n in ops.values())
    levels = np.array([lv for p in draws for chain in p.levels for lv in chain if lv is not None])
    assert levels.min() >= 0.1 and levels.max() <= 3.0 and abs(levels.mean() - 1.55) < 0.03
    signs = [param > 0 for p in draws for chain in p.chains for name, param in chain
             if AUGMIX_OPS[name].signed and param != 0]
    assert abs(np.mean(signs) - 0.5) < 0.03
    fixed = AugMix("augmix_official-d2-w5").sample_params(rng, (32, 32))
    assert len(fixed.chains) == 5 and all(len(chain) == 2 for chain in fixed.chains)


def test_augmix_mixing_is_not_clipped_nor_rounded(real_images):
    clean = np.zeros((2, 2, 3), np.float32)
    out = augmix_mix(clean, [np.full_like(clean, 2.0), np.full_like(clean, -1.0)], [0.75, 0.25], 1.0)
    assert np.allclose(out, 1.25)  # 0.75 * 2 - 0.25 * 1: outside-range inputs stay outside, nothing clipped
    out = augmix_mix(clean, [np.full_like(clean, -0.5)], [1.0], 0.5)
    assert np.allclose(out, -0.25)
    view = AugMix("augmix")(real_images[0], rng=np.random.default_rng(4))
    assert view.dtype == torch.float32 and view.shape == (3, 32, 32)
    scaled = view * 255
    assert not torch.allclose(scaled, scaled.round(), atol=1e-3)  # float mixing, not uint8


def test_augmix_rgba_and_pil_output(real_images):
    rgba = real_images[1].convert("RGBA")
    out = AugMix("augmix", output="pil")(rgba, rng=np.random.default_rng(0))
    assert out.mode == "RGBA" and out.size == (32, 32)
    gray = AugMix("augmix")(real_images[1].convert("L"), rng=np.random.default_rng(0))
    assert gray.shape == (1, 32, 32)


def test_augmix_is_reproducible_per_generator(real_images):
    aug = AugMix("augmix")
    img = real_images[2]
    a = aug(img, rng=np.random.default_rng(7))
    assert torch.equal(a, aug(img, rng=np.random.default_rng(7)))
    assert not torch.equal(a, aug(img, rng=np.random.default_rng(8)))
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        aug(img, rng=7)


@pytest.mark.parametrize("text, canonical", [
    ("augmix", "augmix_official-s3-w3-d0-a1"),
    ("augmix_official", "augmix_official-s3-w3-d0-a1"),
    ("augmix_official-s1", "augmix_official-s1-w3-d0-a1"),
    ("augmix_official-a0.5-d2-w4-s2.5", "augmix_official-s2.5-w4-d2-a0.5"),
    ("augmix_official-a0.00001", "augmix_official-s3-w3-d0-a0.00001"),  # no exponent: '-' separates sections
    ("augmix_official-s0.123456789-a99.99999999999999", "augmix_official-s0.123456789-w3-d0-a99.99999999999999"),
])
def test_augmix_config_strings_round_trip(text, canonical):
    cfg = parse_augmix_config(text)
    assert format_augmix_config(cfg) == canonical == str(cfg)
    assert parse_augmix_config(canonical) == cfg


@pytest.mark.parametrize("text, exc, match", [
    ("augmix-m3-w3", ValueError, "timm's AugMix strings"),
    ("augmix_official-s11", ValueError, "severity must be in"),
    ("augmix_official-w0", ValueError, "width must be in"),
    ("augmix_official-d1.5", ValueError, "depth must be an integer"),
    ("augmix_official-a0", ValueError, "alpha must be in"),
    ("augmix_official-q3", ValueError, "unknown section 'q3'"),
    ("augmix_official-s2-s3", ValueError, "given twice"),
    ("augmix_official-sx", ValueError, "needs a number"),
    (3, TypeError, "AugMixConfig"),
])
def test_augmix_config_errors(text, exc, match):
    with pytest.raises(exc, match=match):
        parse_augmix_config(text)


def test_create_transform_dispatch_keeps_timm_reachable(real_images):
    from timm.data.auto_augment import AugMixAugment, AutoAugment, RandAugment

    def secondary(aug, size=32):
        return create_transform(size, is_training=True, aug=aug, separate=True)[1]

    assert isinstance(secondary("augmix"), AugMix) and secondary("augmix").output == "tensor"
    assert secondary("augmix_official-s1").config.severity == 1
    for name in ("augmix-timm", "augmix-m3-w3", "augmix-m5-w4-d2"):
        assert isinstance(secondary(name), AugMixAugment)
    assert isinstance(secondary("original"), AutoAugment) and isinstance(secondary("v0"), AutoAugment)
    assert isinstance(secondary("rand-m9-mstd0.5"), RandAugment)
    assert secondary("autoaugment").policy_name == "cifar10"
    assert secondary("autoaugment", 96).policy_name == "imagenet"
    assert secondary("autoaugment-imagenet").policy_name == "imagenet"
    assert isinstance(secondary("random-autoaugment"), RandomAutoAugmentStar)
    # uint8 pipelines get AugMix rounded to uint8
    t = create_transform(32, is_training=True, aug="augmix", normalize=False)
    assert t(real_images[0]).dtype == torch.uint8
    t = create_transform(32, is_training=True, aug="augmix")
    assert t(real_images[0]).dtype == torch.float32


def test_augmix_jsd_path_gives_clean_plus_two_float_views(real_images):
    cfg = TrainConfig(aug="augmix")
    cfg.validate()
    assert cfg.aug_name == "augmix" and cfg.use_jsd and cfg.aug_string == "augmix_official-s3-w3-d0-a1"
    tf, views = train_transform(cfg, 32, (0.5,) * 3, (0.5,) * 3)
    assert views == 3 and isinstance(tf[1], AugMix)
    ds = DynMixDataset(real_images[:4], tf, num_splits=views, seed=3)
    x = ds.transform_sample(real_images[0], 0)
    assert len(x) == 3 and all(v.shape == (3, 32, 32) and v.dtype == torch.float32 for v in x)
    assert not torch.equal(x[1], x[2]) and not torch.equal(x[0], x[1])
    pixels = (x[1] * 0.5 + 0.5) * 255
    assert not torch.allclose(pixels, pixels.round(), atol=1e-3)  # views are not rounded to uint8
    assert all(torch.equal(a, b) for a, b in zip(x, ds.transform_sample(real_images[0], 0)))  # per sample
    ds.set_epoch(1)
    assert not torch.equal(x[1], ds.transform_sample(real_images[0], 0)[1])
    no_jsd, n = train_transform(TrainConfig(aug="augmix", jsd=False), 32, (0.5,) * 3, (0.5,) * 3)
    assert n == 1 and no_jsd(real_images[0]).shape == (3, 32, 32)


def test_train_with_official_augmix_on_digits(tmp_path):
    res = train(TrainConfig(aug="augmix", output_dir=str(tmp_path), max_steps=2, **TINY))
    assert res["jsd"] and res["num_mixes"] == 2 and res["steps"] == 2
    assert res["aug"] == "augmix_official-s3-w3-d0-a1" and res["aug_name"] == "augmix"
    assert np.isfinite(res["history"][-1]["train_loss"])


def test_train_config_names_for_baselines():
    timm_cfg = TrainConfig(aug="augmix-timm")
    timm_cfg.validate()
    assert timm_cfg.aug_string == "augmix-m3-w3" and timm_cfg.has_views
    for name, family in (("autoaugment", "autoaugment"), ("autoaugment-cifar10", "autoaugment"),
                         ("random-autoaugment", "random-autoaugment"), ("original", "autoaugment")):
        cfg = TrainConfig(aug=name)
        cfg.validate()
        assert cfg.aug_name == family and cfg.aug_string == name and not cfg.use_jsd
        with pytest.raises(ValueError, match="--jsd needs augmented views"):
            TrainConfig(aug=name, jsd=True).validate()
    with pytest.raises(ValueError, match="severity must be in"):
        TrainConfig(aug="augmix_official-s42").validate()
    with pytest.raises(ValueError, match="unknown --aug 'autoaugment-svhn'"):
        TrainConfig(aug="autoaugment-svhn").validate()


@pytest.mark.parametrize("aug, cls", [("autoaugment", AutoAugmentStar), ("random-autoaugment", RandomAutoAugmentStar)])
def test_training_path_accepts_aa_star_names(aug, cls, real_images):
    tf, views = train_transform(TrainConfig(aug=aug), 32, (0.5,) * 3, (0.5,) * 3)
    assert views == 1 and any(isinstance(t, cls) for t in tf.transforms)
    ds = DynMixDataset(real_images[:4], tf, seed=1)
    a = ds.transform_sample(real_images[3], 2)
    assert a.shape == (3, 32, 32) and torch.equal(a, ds.transform_sample(real_images[3], 2))


# ---------------------------------------------------------------------------------------------------------------
def test_aa_star_policies_drop_exactly_the_overlapping_ops():
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    torchvision_ops = set(AutoAugment()._augmentation_space(10, (32, 32)))
    assert set(RANDOM_AA_OPS) <= torchvision_ops and not set(RANDOM_AA_OPS) & set(OVERLAPPING_OPS)
    expected_ops = {
        "cifar10": {"AutoContrast", "Equalize", "Invert", "Posterize", "Rotate", "ShearY", "Solarize", "TranslateX",
                    "TranslateY"},
        "imagenet": {"AutoContrast", "Equalize", "Invert", "Posterize", "Rotate", "ShearX", "Solarize"},
    }
    for name, tv_policy in (("cifar10", AutoAugmentPolicy.CIFAR10), ("imagenet", AutoAugmentPolicy.IMAGENET)):
        full = AutoAugment(tv_policy).policies
        ours = aa_star_policy(name)
        assert {n for sub in full for n, _, _ in sub} & set(OVERLAPPING_OPS)  # the full policy has them
        assert {n for sub in ours for n, _, _ in sub} == expected_ops[name] == set(AutoAugmentStar(name).op_names)
        # every non-overlapping entry of the full policy is kept, in order; sub-policies left empty are dropped
        kept = [tuple(e for e in sub if e[0] not in OVERLAPPING_OPS) for sub in full]
        assert list(ours) == [tuple((n, float(p), b) for n, p, b in sub) for sub in kept if sub]
    assert len(aa_star_policy("cifar10")) == 19 and len(aa_star_policy("imagenet")) == 23
    with pytest.raises(ValueError, match="policy must be one of"):
        aa_star_policy("svhn")


def test_aa_star_draws_only_allowed_ops_and_is_reproducible(real_images):
    img = real_images[5]
    for aug in (AutoAugmentStar("cifar10"), AutoAugmentStar("imagenet"), RandomAutoAugmentStar()):
        rng = np.random.default_rng(0)
        names = Counter(n for _ in range(400) for n, _ in aug.sample_steps(rng, (32, 32)))
        assert set(names) <= set(aug.op_names) and not set(names) & set(OVERLAPPING_OPS)
        outs = [np.asarray(aug(img, rng=np.random.default_rng(s))) for s in range(6)]
        assert np.array_equal(outs[0], np.asarray(aug(img, rng=np.random.default_rng(0))))
        assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    rand = RandomAutoAugmentStar()
    rng = np.random.default_rng(1)
    subs = [rand.sample_subpolicy(rng) for _ in range(2000)]
    assert all(len(s) == 2 for s in subs)
    assert {n for s in subs for n, _, _ in s} == set(RANDOM_AA_OPS)
    assert {p for s in subs for _, p, _ in s} == {i / 10 for i in range(11)}
    assert {b for s in subs for _, _, b in s} == set(range(10))


def test_aa_star_magnitudes_follow_torchvision(real_images):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.autoaugment import _apply_op

    img = real_images[6]
    aug = AutoAugmentStar("cifar10")
    rng = np.random.default_rng(3)
    for _ in range(30):
        steps = aug.sample_steps(np.random.default_rng(rng.integers(1 << 30)), (32, 32))
        out = img
        for name, magnitude in steps:
            out = _apply_op(out, name, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
        assert np.array_equal(np.asarray(aug.apply(img, steps)), np.asarray(out))
    # every magnitude is the value of one of the policy's bins (TranslateY: linspace(0, 150/331 * height, 10))
    bins = {b for sub in aug.policy for n, _, b in sub if n == "TranslateY"}
    allowed = {round(150 / 331 * 32 * b / 9, 4) for b in bins}
    mags = [m for _ in range(300) for n, m in aug.sample_steps(rng, (32, 32)) if n == "TranslateY"]
    assert mags and {round(abs(m), 4) for m in mags} <= allowed and min(mags) < 0 < max(mags)


def test_random_aa_star_argument_errors():
    with pytest.raises(ValueError, match="non-empty subset"):
        RandomAutoAugmentStar(ops=("Contrast",))
    with pytest.raises(ValueError, match="num_ops"):
        RandomAutoAugmentStar(num_ops=0)
    with pytest.raises(TypeError, match="PIL image"):
        AutoAugmentStar()(torch.zeros(3, 8, 8))
