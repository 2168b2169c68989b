import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from timm_dynmix.ops import MAX_ROTATE_DEG, MAX_SHEAR, OP_SETS, OPS, PIXEL_OPS, check_image, get_op, resolve_ops

BILINEAR = TF.InterpolationMode.BILINEAR


def mad(a, b) -> float:
    """Mean absolute difference of two images in [0, 1] units."""
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean() / 255.0)


def test_op_sets():
    assert OP_SETS["cifar"] == ("flip_h", "flip_v", "rotate", "translate_x", "translate_y", "shear_x", "shear_y",
                                "autocontrast", "equalize", "solarize", "posterize")
    assert OP_SETS["imagenet"] == OP_SETS["cifar"] + ("downscale",)
    assert "flip_v" not in OP_SETS["cifar_upright"] and len(OP_SETS["cifar_upright"]) == 10
    # no op overlaps an ImageNet-C corruption
    for banned in ("color", "brightness", "contrast", "sharpness", "blur", "noise", "cutout"):
        assert not any(banned == name for name in OPS)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_every_op_keeps_mode_size_dtype(real_images, name, mode):
    rng = np.random.default_rng(0)
    for img in real_images[:6]:
        src = img.convert(mode)
        if mode == "RGBA":
            src.putalpha(Image.fromarray(np.asarray(img.convert("L"))))
        out = OPS[name](src, 3.0, rng)
        assert out.mode == mode and out.size == src.size
        arr = np.asarray(out)
        assert arr.dtype == np.uint8


def test_rgba_alpha_rules(real_images):
    img = real_images[0].convert("RGBA")
    alpha = np.full((32, 32), 200, np.uint8)
    img.putalpha(Image.fromarray(alpha))
    for name in PIXEL_OPS:  # pixel ops leave alpha alone
        assert np.array_equal(np.asarray(OPS[name].apply(img, 3 if name == "posterize" else 128))[..., 3], alpha)
    rotated = np.asarray(OPS["rotate"].apply(img, 30.0))[..., 3]  # geometric ops move it: corners become transparent
    assert rotated[0, 0] == 0 and rotated[16, 16] == 200


def test_magnitudes_follow_augmix_conventions():
    size = (30, 60)
    assert OPS["rotate"].magnitude(10, size) == MAX_ROTATE_DEG == 30
    assert OPS["rotate"].magnitude(3, size) == pytest.approx(9.0)
    assert OPS["shear_x"].magnitude(10, size) == MAX_SHEAR == 0.3
    assert OPS["translate_x"].magnitude(10, size) == pytest.approx(10.0)  # width / 3
    assert OPS["translate_y"].magnitude(10, size) == pytest.approx(20.0)  # height / 3
    assert OPS["posterize"].magnitude(3, size) == 3 and OPS["posterize"].magnitude(2.4, size) == 4
    assert OPS["solarize"].magnitude(3, size) == 256 - 76
    assert OPS["downscale"].magnitude(10, size) == 0.5


def test_sign_is_random_and_balanced():
    rng = np.random.default_rng(1)
    signs = [np.sign(OPS["rotate"].sample(5.0, rng, (32, 32))) for _ in range(4000)]
    assert abs(np.mean(signs)) < 0.05
    assert OPS["posterize"].sample(5.0, rng, (32, 32)) > 0  # unsigned ops stay positive


# op-by-op agreement with torchvision's functional ops on the same parameter, on PIL and on tensors
TV_EQUIV = {
    "flip_h": (0.0, lambda im, p: TF.hflip(im)),
    "flip_v": (0.0, lambda im, p: TF.vflip(im)),
    "rotate": (9.0, lambda im, p: TF.rotate(im, p, interpolation=BILINEAR)),
    "translate_x": (3.2, lambda im, p: TF.affine(im, 0.0, [p, 0.0], 1.0, [0.0, 0.0], interpolation=BILINEAR)),
    "translate_y": (-3.2, lambda im, p: TF.affine(im, 0.0, [0.0, p], 1.0, [0.0, 0.0], interpolation=BILINEAR)),
    "shear_x": (0.09, lambda im, p: TF.affine(im, 0.0, [0, 0], 1.0, [math.degrees(math.atan(p)), 0.0],
                                              interpolation=BILINEAR)),
    "shear_y": (-0.09, lambda im, p: TF.affine(im, 0.0, [0, 0], 1.0, [0.0, math.degrees(math.atan(p))],
                                               interpolation=BILINEAR)),
    "autocontrast": (0.0, lambda im, p: TF.autocontrast(im)),
    "equalize": (0.0, lambda im, p: TF.equalize(im)),
    "solarize": (180.0, lambda im, p: TF.solarize(im, p)),
    "posterize": (3.0, lambda im, p: TF.posterize(im, int(p))),
}


@pytest.mark.parametrize("name", list(TV_EQUIV))
def test_agrees_with_torchvision(real_images, name):
    param, tv = TV_EQUIV[name]
    pil_diff, tensor_diff = [], []
    for img in real_images:
        ours = OPS[name].apply(img, param)
        pil_diff.append(mad(ours, tv(img, param)))
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1)
        tensor_diff.append(mad(ours, tv(t, param).permute(1, 2, 0).numpy()))
    assert np.mean(pil_diff) < 0.1 / 255  # same PIL kernels underneath: near exact
    limit = 2.5 / 255 if name == "rotate" else 2 / 255  # tensor kernels interpolate borders differently
    assert np.mean(tensor_diff) < limit, (name, np.mean(tensor_diff) * 255)


def test_downscale_is_a_mild_blur(real_images):
    img = real_images[3]
    out = OPS["downscale"].apply(img, 0.5)
    assert 0 < mad(img, out) < 0.1
    assert OPS["downscale"].apply(img, 1.0).tobytes() == img.tobytes()


def test_resolve_ops_and_errors():
    assert resolve_ops("imagenet") == OP_SETS["imagenet"]
    assert resolve_ops("rotate") == ("rotate",)
    assert resolve_ops(["rotate", "equalize"]) == ("rotate", "equalize")
    with pytest.raises(ValueError, match="known ops: flip_h, flip_v"):
        get_op("color")
    with pytest.raises(ValueError, match="at least one op"):
        resolve_ops([])
    with pytest.raises(ValueError, match="known sets: cifar, cifar_upright, imagenet, imagenet_upright"):
        resolve_ops("svhn")


def test_check_image_errors():
    with pytest.raises(TypeError, match="DynamicMixupBatch"):
        check_image(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="mode 'CMYK'"):
        check_image(Image.new("CMYK", (32, 32)))
    with pytest.raises(ValueError, match="at least 8x8 pixels, got 7x100"):
        check_image(Image.new("RGB", (7, 100)))


def test_pixel_ops_are_exactly_imageops(real_images, photo):
    """The pixel ops build their tables with numpy or a cache: results identical to PIL.ImageOps."""
    from PIL import ImageOps

    flat = [Image.new("RGB", (16, 16), (5, 200, 77)), Image.new("L", (9, 9), 255)]
    few = np.full((16, 16, 3), 128, np.uint8)
    few[0, :3] = 3  # one dominant value: equalize's step is 0
    images = [*real_images[:12], photo.crop((0, 0, 160, 120)), *flat, Image.fromarray(few),
              *(im.convert("L") for im in real_images[:4])]
    for img in images:
        for name, ref in (("autocontrast", ImageOps.autocontrast(img)), ("equalize", ImageOps.equalize(img))):
            assert np.array_equal(np.asarray(OPS[name].apply(img, 0.0)), np.asarray(ref)), name
        for t in (0, 1, 128, 180, 256):
            assert np.array_equal(np.asarray(OPS["solarize"].apply(img, float(t))),
                                  np.asarray(ImageOps.solarize(img, t)))
        for b in (1, 3, 4, 8):
            assert np.array_equal(np.asarray(OPS["posterize"].apply(img, float(b))),
                                  np.asarray(ImageOps.posterize(img, b)))
