"""``timm-dynmix preview``: render a grid of views of an image for any ``--aug`` the trainer accepts, to check it."""

from __future__ import annotations

import argparse

from timm_dynmix.augment.preview import SAMPLE_IMAGES

__all__ = ["add_arguments", "run"]



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix preview``."""
    parser.add_argument("image", nargs="?", default=None,
                        help=f"image file to augment (default: the photograph {SAMPLE_IMAGES[0]} shipped with "
                             f"scikit-learn; {' or '.join(SAMPLE_IMAGES)} pick one of those)")
    parser.add_argument("--aug", default="dynmix", help="any --aug of `timm-dynmix train`: a DynMix config string, "
                        "augmix, autoaugment, random-autoaugment, mixup, cutmix, none or a timm string "
                        "(default: %(default)s)")
    parser.add_argument("--out", default="dynmix_preview.png", help="output PNG (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=4, help="number of sampled views (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default: %(default)s)")
    parser.add_argument("--tile", type=int, default=192, help="tile size in pixels (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix preview``."""
    from timm_dynmix.augment.preview import save_preview
    from timm_dynmix.train.config import check_aug

    spec = check_aug(args.aug)  # what the trainer accepts, checked as it checks it: parsed once, here
    out = save_preview(args.image, args.out, spec, rows=args.rows, seed=args.seed, tile=args.tile)
    shown = spec.canonical if spec.family == "dynmix" else args.aug
    print(f"wrote {out} ({shown})")
    return 0
