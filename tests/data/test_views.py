import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from timm_dynmix import (
    OP_SETS,
    DynamicMixup,
    DynMixDataset,
    DynMixViews,
    collate_splits,
    create_transform,
    derive_seed,
)


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, images, labels=None):
        self.images = images
        self.labels = labels if labels is not None else list(range(len(images)))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def unnormalize(x, mean=(0.5,) * 3, std=(0.5,) * 3):
    return x * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]


def test_create_transform_cifar_dynmix(real_images):
    t = create_transform(32, is_training=True, aug="dynmix-m3", mean=(0.5,) * 3, std=(0.5,) * 3)
    assert isinstance(t, DynMixViews) and t.num_splits == 3
    crop = t.base.transforms[1]
    assert isinstance(crop, transforms.RandomCrop) and crop.padding == 4
    views = t(real_images[0])
    assert len(views) == 3 and all(v.shape == (3, 32, 32) and v.dtype == torch.float32 for v in views)
    assert -1 <= min(v.min() for v in views) and max(v.max() for v in views) <= 1


def test_views_share_the_base_crop(real_images):
    """With flip_h as the only op, every DynMix view is exactly the mirrored clean view: same base crop."""
    t = create_transform(32, is_training=True, aug="dynmix-d1-oflip_h-n3", mean=(0.5,) * 3, std=(0.5,) * 3)
    ds = DynMixDataset(ListDataset(real_images), t, seed=1)
    for i in range(len(ds)):
        (clean, *mixes), label = ds[i]
        assert label == i and len(mixes) == 3
        for m in mixes:
            torch.testing.assert_close(m, clean.flip(-1), atol=1e-6, rtol=0)


def test_imagenet_style_and_eval(photo):
    t = create_transform(224, is_training=True, aug="dynmix-oimagenet", num_mixes=1)
    assert t.num_splits == 2 and type(t.base.transforms[1]).__name__ == "RandomResizedCropAndInterpolation"
    assert all(v.shape == (3, 224, 224) for v in t(photo))
    ev = create_transform(224, is_training=False, crop_pct=0.875)
    assert ev(photo).shape == (3, 224, 224)
    small = create_transform((3, 32, 32), is_training=False)
    img = photo.resize((32, 32))
    expected = transforms.Normalize(small.transforms[-1].transforms[1].mean, small.transforms[-1].transforms[1].std)(
        transforms.functional.to_tensor(img))
    torch.testing.assert_close(small(img), expected)  # native size: no resampling


def test_uint8_views_for_device_augmentation(real_images):
    t = create_transform(32, is_training=True, aug="dynmix", normalize=False)
    views = t(real_images[0])
    assert all(v.dtype == torch.uint8 and v.shape == (3, 32, 32) for v in views)
    plain = create_transform(32, is_training=True, aug=None, normalize=False)
    assert plain(real_images[0]).dtype == torch.uint8


def test_separate_stages_and_timm_baselines(real_images):
    _, aug, _ = create_transform(32, is_training=True, aug="dynmix", separate=True)
    assert isinstance(aug, DynamicMixup)
    for name in ("augmix-m3-w3", "rand-m9-mstd0.5", "original"):
        t = create_transform(32, is_training=True, aug=name)
        assert t(real_images[0]).shape == (3, 32, 32)
    stages = create_transform(32, is_training=True, aug="augmix-m3-w3", separate=True)
    ds = DynMixDataset(ListDataset(real_images), stages, num_splits=3)
    views, _ = ds[0]
    assert len(views) == 3 and not torch.equal(views[0], views[1])


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"aug": "blur-m3"}, ValueError, "unknown augmentation 'blur-m3'"),
    ({"aug": "dynmix-m20"}, ValueError, "magnitude must be in"),
    ({"aug": 3}, TypeError, "aug must be a string"),
    ({"aug": None, "separate": True}, ValueError, "separate=True needs an augmentation"),
    ({"input_size": (1, 2, 3, 4)}, ValueError, "input_size must be"),
])
def test_create_transform_errors(kwargs, exc, match):
    kwargs = {"input_size": 32, "is_training": True, **kwargs}
    with pytest.raises(exc, match=match):
        create_transform(**kwargs)
    with pytest.raises(ValueError, match="eval transforms take no augmentation"):
        create_transform(32, is_training=False, aug="dynmix")


def test_dataset_determinism_and_independence(real_images):
    t = create_transform(32, is_training=True, aug="dynmix", mean=(0.5,) * 3, std=(0.5,) * 3)
    ds = DynMixDataset(ListDataset(real_images), t, seed=7)
    a = ds[3][0]
    b = ds[3][0]
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same (seed, epoch, index): same views
    assert not torch.equal(a[1], a[2])  # different views differ
    assert not torch.equal(a[1], ds[4][0][1])  # different index differs
    ds.set_epoch(1)
    c = ds[3][0]
    assert not torch.equal(a[1], c[1])  # different epoch differs
    other = DynMixDataset(ListDataset(real_images), t, seed=8)
    assert not torch.equal(a[1], other[3][0][1])  # different seed differs
    # the caller's global RNG state is untouched
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    ds[0]
    assert torch.equal(torch.rand(1), before)


def test_same_views_with_any_number_of_workers(real_images):
    t = create_transform(32, is_training=True, aug="dynmix")
    ds = DynMixDataset(ListDataset(real_images[:12]), t, seed=3)
    ds.set_epoch(2)

    def batches(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_splits)
        return [x for x, _ in dl]

    for x0, x2 in zip(batches(0), batches(2)):
        assert torch.equal(x0, x2)


def test_collate_splits_layout():
    batch = [(tuple(torch.full((1, 2, 2), float(10 * k + i)) for k in range(3)), i) for i in range(4)]
    x, y = collate_splits(batch)
    assert x.shape == (12, 1, 2, 2) and y.tolist() == [0, 1, 2, 3] * 3
    splits = torch.split(x, 4)
    for k in range(3):
        assert splits[k][:, 0, 0, 0].tolist() == [10 * k + i for i in range(4)]
    with pytest.raises(ValueError, match="same number of views"):
        collate_splits([((torch.zeros(1),), 0), ((torch.zeros(1), torch.zeros(1)), 1)])


def test_dict_items_and_plain_transform(real_images):
    rows = [{"img": im, "label": i} for i, im in enumerate(real_images[:4])]
    t = create_transform(32, is_training=True, aug=None)
    ds = DynMixDataset(rows, t, seed=0, image_key="img")
    x, y = ds[2]
    assert x.shape == (3, 32, 32) and y == 2
    assert torch.equal(ds[2][0], x)  # the plain random crop/flip is seeded per sample too


def test_derive_seed():
    s = derive_seed(0, 1, 2, 3)
    assert s == derive_seed(0, 1, 2, 3) and 0 <= s < 2**63
    keys = {derive_seed(0, e, i, v) for e in range(3) for i in range(30) for v in range(3)}
    assert len(keys) == 270
    assert derive_seed(0, split="train") != derive_seed(0, split="eval")
    with pytest.raises(ValueError, match="index must be >= 0"):
        derive_seed(0, 0, -1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        derive_seed(1.5)


def test_grayscale_views():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8), mode="L")
    t = create_transform(32, is_training=True, aug="dynmix", mean=(0.5,), std=(0.5,))
    assert all(v.shape == (1, 32, 32) for v in t(img))


MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _final(normalize=True):
    steps = [transforms.ToTensor()] + ([transforms.Normalize(MEAN, STD)] if normalize else [])
    return transforms.Compose(steps)


def test_views_take_the_normalization_of_final(real_images):
    """normalize=None with a normalizing ``final``: the DynMix views are normalized like the clean view."""
    t = DynMixViews(transforms.Compose([]), "dynmix-d1-oflip_h-n2", _final())
    assert isinstance(t.normalize, transforms.Normalize)
    clean, *mixes = t(real_images[0])
    assert clean.min() < 0  # normalized
    for m in mixes:
        torch.testing.assert_close(m, clean.flip(-1), atol=1e-6, rtol=0)
    plain = DynMixViews(transforms.Compose([]), "dynmix-d1-oflip_h", _final(normalize=False))
    clean, mix1, _ = plain(real_images[0])
    torch.testing.assert_close(mix1, clean.flip(-1), atol=1e-6, rtol=0)


def test_a_final_the_views_cannot_match_is_refused(real_images):
    scaled = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x * 2 - 1)])
    t = DynMixViews(transforms.Compose([]), "dynmix", scaled)
    with pytest.raises(ValueError, match="does not give ToTensor followed by no normalization"):
        t(real_images[0])
    wrong = DynMixViews(transforms.Compose([]), "dynmix", _final(), normalize=transforms.Normalize((0.5,) * 3,
                                                                                                  (0.5,) * 3))
    with pytest.raises(ValueError, match="does not give ToTensor followed by normalize="):
        wrong(real_images[0])
    twice = transforms.Compose([_final(), transforms.Normalize(MEAN, STD)])
    with pytest.raises(ValueError, match="normalizes 2 times"):
        DynMixViews(transforms.Compose([]), "dynmix", twice)


def test_views_keep_a_passed_dynamicmixups_seed_and_output(real_images):
    img = real_images[5]
    base = transforms.RandomCrop(32, padding=4)

    def views(seed, output="tensor"):
        return DynMixViews(base, DynamicMixup("dynmix-m5", output=output, seed=seed), _final())

    a, b, c = views(5), views(5), views(6)
    assert a.dynmix.seed == 5 and a.dynmix.output == "tensor"
    first = [a(img) for _ in range(3)]
    for x, y in zip(first, [b(img) for _ in range(3)]):
        assert all(torch.equal(u, v) for u, v in zip(x, y))  # the seed reproduces crops and views
    assert not torch.equal(first[0][1], first[1][1])  # successive calls differ
    assert not torch.equal(first[0][1], c(img)[1])
    # output='pil': views are rounded to uint8 and go through final like the clean view
    p = views(5, "pil")
    assert p.dynmix.output == "pil"
    _, mix1, _ = p.views(img, [1, 2, 3])
    expected = _final()(DynamicMixup("dynmix-m5")(base_crop(base, img, 1), rng=np.random.default_rng(2)))
    torch.testing.assert_close(mix1, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="uint8=True needs a DynamicMixup with output='pil'"):
        DynMixViews(base, DynamicMixup(output="tensor"), transforms.PILToTensor(), uint8=True)


def base_crop(base, img, seed):
    from timm_dynmix.rng import seeded

    with seeded(seed):
        return base(img)


@pytest.mark.parametrize("aug, train, size", [(None, True, 32), ("dynmix", True, 32), (None, False, 32),
                                              ("dynmix-oimagenet", True, 96), (None, False, 96)])
def test_image_modes_checked_before_the_first_transform(real_images, aug, train, size):
    rgb = real_images[0].resize((size, size))
    t = create_transform(size, is_training=train, aug=aug)
    cases = [(rgb.convert("L"), r"mode 'L' image has 1 channel\(s\) but mean and std have 3 values"),
             (rgb.convert("I;16"), r"take PIL images of mode L, RGB, RGBA, got mode 'I;16'.*convert\('RGB'\)"),
             (rgb.convert("CMYK"), r"take PIL images of mode L, RGB, RGBA, got mode 'CMYK'")]
    for img, match in cases:
        with pytest.raises(ValueError, match=match):
            t(img)
    t(rgb)
    # grayscale is fine with a 1-value normalization, and without normalization
    gray = create_transform(size, is_training=train, aug=aug, mean=(0.5,), std=(0.5,))(rgb.convert("L"))
    assert (gray[0] if isinstance(gray, tuple) else gray).shape[0] == 1
    assert create_transform(size, is_training=train, aug=aug, normalize=False)(rgb.convert("L")) is not None


def test_op_set_follows_the_image_size(photo):
    big = create_transform(224, is_training=True, aug="dynmix-m3")
    assert big.dynmix.config.ops == OP_SETS["imagenet"] and big.dynmix.config_str.endswith("-oimagenet")
    assert create_transform(32, is_training=True, aug="dynmix").dynmix.config_str.endswith("-ocifar")
    assert create_transform(224, is_training=True, aug="dynmix-ocifar").dynmix.config.ops == OP_SETS["cifar"]
    _, stage, _ = create_transform((3, 96, 96), is_training=True, aug="dynmix", separate=True)
    assert stage.config.ops == OP_SETS["imagenet"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chosen set is explicit: no warning about the default
        big(photo)
