import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import AugMixDataset, create_loader, create_transform
from timm.data import transforms_factory as tf

from timm_dynmix import DynamicMixup, collate_splits, register_timm, unregister_timm
from timm_dynmix.integrations.timm import is_registered


@pytest.fixture
def hook():
    register_timm()
    yield
    unregister_timm()


class ImageListDataset(torch.utils.data.Dataset):
    """Map-style dataset with a settable ``transform``, as timm's datasets have."""

    def __init__(self, images):
        self.images = images
        self.transform = None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return (self.transform(img) if self.transform is not None else img), i


def test_register_is_idempotent_and_reversible():
    original = tf.auto_augment_transform
    init, setter = AugMixDataset.__init__, AugMixDataset._set_transforms
    register_timm()
    register_timm()
    assert is_registered() and tf.auto_augment_transform.__wrapped__ is original
    assert AugMixDataset._set_transforms.__wrapped__ is setter and AugMixDataset.__init__.__wrapped__ is init
    unregister_timm()
    assert tf.auto_augment_transform is original and not is_registered()
    assert AugMixDataset.__init__ is init and AugMixDataset._set_transforms is setter
    unregister_timm()  # no-op


def test_create_transform_builds_dynmix(hook):
    t = create_transform(32, is_training=True, auto_augment="dynmix-m4-d1")
    dyn = [s for s in t.transforms if isinstance(s, DynamicMixup)]
    assert len(dyn) == 1 and dyn[0].config_str.startswith("dynmix-m4-d1")
    # every other string falls through to timm
    for name in ("augmix-m3-w3", "rand-m9-mstd0.5", "original"):
        t = create_transform(32, is_training=True, auto_augment=name)
        assert not any(isinstance(s, DynamicMixup) for s in t.transforms)
    with pytest.raises(ValueError, match="DynMix magnitude"):
        create_transform(32, is_training=True, auto_augment="dynmix-m99")


def test_op_set_follows_timms_image_size(hook):
    """Without an ``o`` key the hook picks the op set from the size timm builds for; an explicit ``o`` is kept."""
    from timm_dynmix.augment.ops import OP_SETS

    def dynmix_of(size: int, aug: str) -> DynamicMixup:
        return next(s for s in create_transform(size, is_training=True, auto_augment=aug).transforms
                    if isinstance(s, DynamicMixup))

    for size, op_set in ((32, "cifar"), (64, "cifar"), (96, "imagenet"), (224, "imagenet")):
        t = dynmix_of(size, "dynmix-m3")
        assert t.config.ops == OP_SETS[op_set] and t.config_str.endswith(f"-o{op_set}"), size
    assert dynmix_of(224, "dynmix-ocifar_upright").config.ops == OP_SETS["cifar_upright"]


def test_without_hook_timm_rejects_dynmix():
    assert not is_registered()
    # timm's own parser: it takes 'dynmix' for an AutoAugment policy name and asserts on the unknown section
    with pytest.raises(AssertionError, match="Unknown AutoAugment config section"):
        create_transform(32, is_training=True, auto_augment="dynmix-m3")


@pytest.mark.parametrize("prefetcher", [True, False])
def test_create_loader_yields_clean_and_dynmix_splits(hook, real_images, prefetcher):
    """timm's create_loader + AugMixDataset with num_aug_splits=3: split 0 clean, splits 1-2 DynMix views.

    With no crop (scale and ratio 1) and no flip, the clean split is the image; with flip_h as the only op, both
    DynMix views are its mirror image exactly. Checked through timm's prefetcher + fast_collate (what timm's
    train.py uses) and through our split-major collate.
    """
    ds = ImageListDataset(real_images[:8])
    ds = AugMixDataset(ds, num_splits=3)
    loader = create_loader(ds, input_size=(3, 32, 32), batch_size=4, is_training=True, use_prefetcher=prefetcher,
                           device=torch.device("cpu"), auto_augment="dynmix-d1-oflip_h", num_aug_splits=3,
                           scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, color_jitter=None, mean=(0.5,) * 3,
                           std=(0.5,) * 3, num_workers=0, interpolation="bilinear",
                           collate_fn=None if prefetcher else collate_splits)
    assert isinstance(ds.augmentation.transforms[0], DynamicMixup)
    x, y = next(iter(loader))
    ids = y[:4].tolist()  # the training loader shuffles
    assert x.shape == (12, 3, 32, 32) and y.tolist() == ids * 3
    clean, mix1, mix2 = torch.split(x.float(), 4)
    expected = torch.stack([torch.from_numpy(np.asarray(real_images[i], dtype=np.float32) / 255).permute(2, 0, 1)
                            for i in ids]) * 2 - 1
    torch.testing.assert_close(clean, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(mix1, clean.flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(mix2, clean.flip(-1), atol=1e-5, rtol=0)


def test_create_loader_with_real_dynmix_views_differ(hook, real_images):
    ds = AugMixDataset(ImageListDataset(real_images[:8]), num_splits=3)
    loader = create_loader(ds, input_size=(3, 32, 32), batch_size=8, is_training=True, use_prefetcher=False,
                           auto_augment="dynmix-m3", num_aug_splits=3, num_workers=0, collate_fn=collate_splits)
    clean, mix1, mix2 = torch.split(next(iter(loader))[0], 8)
    assert not torch.equal(mix1, mix2) and not torch.equal(clean, mix1)


def test_moved_internals_give_a_clear_error(monkeypatch):
    import timm

    monkeypatch.delattr(tf, "auto_augment_transform")
    with pytest.raises(RuntimeError, match=f"timm {timm.__version__} moved the auto-augment dispatch"):
        register_timm()


def test_pil_in_pil_out_inside_timm(hook):
    t = create_transform(32, is_training=True, auto_augment="dynmix", separate=True)
    img = Image.new("RGB", (32, 32), (120, 30, 200))
    assert isinstance(t[1](img), Image.Image)


def _dynmix_of(ds):
    return next(t for t in ds.augmentation.transforms if isinstance(t, DynamicMixup))


def test_num_aug_splits_fills_in_a_missing_n(hook, real_images):
    """Without 'n' in the string, timm's num_splits decides and the recorded config says so."""
    ds = AugMixDataset(ImageListDataset(real_images[:4]), num_splits=4)
    ds.transform = create_transform(32, is_training=True, auto_augment="dynmix-m3", separate=True)
    assert _dynmix_of(ds).config.num_mixes == 3 and "-n3-" in _dynmix_of(ds).config_str
    views, _ = ds[0]
    assert len(views) == 4
    # the constructor path (transform already set on the wrapped dataset) is checked too
    inner = ImageListDataset(real_images[:4])
    inner.transform = create_transform(32, is_training=True, auto_augment="dynmix-m3", separate=True)
    assert _dynmix_of(AugMixDataset(inner, num_splits=2)).config.num_mixes == 1


def test_an_explicit_n_that_contradicts_num_aug_splits_is_refused(hook, real_images):
    stages = create_transform(32, is_training=True, auto_augment="dynmix-m3-n2", separate=True)
    ds = AugMixDataset(ImageListDataset(real_images[:4]), num_splits=4)
    with pytest.raises(ValueError, match=r"asks for n2 mixed views .*AugMixDataset\(num_splits=4\).* makes 3"):
        ds.transform = stages
    inner = ImageListDataset(real_images[:4])
    inner.transform = create_transform(32, is_training=True, auto_augment="dynmix-n2", separate=True)
    with pytest.raises(ValueError, match="asks for n2 mixed views"):
        AugMixDataset(inner, num_splits=2)
    with pytest.raises(ValueError, match="asks for n2 mixed views"):
        create_loader(AugMixDataset(ImageListDataset(real_images[:4]), num_splits=2), input_size=(3, 32, 32),
                      batch_size=2, is_training=True, use_prefetcher=False, auto_augment="dynmix-n2",
                      num_aug_splits=2, num_workers=0, collate_fn=collate_splits)
    # agreeing values pass unchanged
    ok = AugMixDataset(ImageListDataset(real_images[:4]), num_splits=3)
    ok.transform = create_transform(32, is_training=True, auto_augment="dynmix-n2", separate=True)
    assert _dynmix_of(ok).config.num_mixes == 2
