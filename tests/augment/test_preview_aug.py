"""`timm-dynmix preview` shows every --aug the trainer accepts, reproducibly, and refuses what the trainer refuses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from timm_dynmix.augment.preview import make_aug_preview
from timm_dynmix.cli import main
from timm_dynmix.train.config import AUG_CHOICES

OTHERS = ["augmix_official-s3-w2", "autoaugment-cifar10", "rand-m9-mstd0.5", "v0", "augmix-m3-w3-d2"]


@pytest.mark.parametrize("aug", [*AUG_CHOICES, *OTHERS])
def test_preview_every_trainer_aug(aug, real_images, tmp_path, capsys):
    src = tmp_path / "in.png"
    real_images[0].save(src)
    out = tmp_path / "grid.png"
    assert main(["preview", str(src), "--aug", aug, "--out", str(out), "--rows", "2", "--tile", "48"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    with Image.open(out) as grid:
        cols = 1 if aug == "none" else 3 if aug in ("mixup", "cutmix") else 4
        assert grid.width == cols * (48 + 8) and grid.height > 48


@pytest.mark.parametrize("aug", ["augmix", "rand-m9-mstd0.5", "cutmix"])
def test_preview_is_reproducible_and_changes_the_image(aug, real_images):
    img = real_images[1]
    a = np.asarray(make_aug_preview(img, aug, rows=3, seed=4, tile=48))
    b = np.asarray(make_aug_preview(img, aug, rows=3, seed=4, tile=48))
    c = np.asarray(make_aug_preview(img, aug, rows=3, seed=5, tile=48))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("aug, message", [("augmix-foo", "invalid timm augmentation 'augmix-foo'"),
                                          ("blur", "unknown --aug 'blur'")])
def test_preview_refuses_what_training_refuses(aug, message, tmp_path, capsys):
    assert main(["preview", "--aug", aug, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.png").exists()
