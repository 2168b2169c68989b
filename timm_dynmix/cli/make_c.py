"""``timm-dynmix make-c``: generate a -C benchmark (15 + 4 corruptions x 5 severities) or a -C-bar benchmark
(``--suite c-bar``: the 10 corruptions of Mintun et al., NeurIPS 2021) from a dataset."""

from __future__ import annotations

import argparse
import logging

from timm_dynmix.robustness.corruptions import PARAMS
from timm_dynmix.robustness.corruptions_cbar import CBAR_CORRUPTIONS, CBAR_PAPER

__all__ = ["add_arguments", "run"]


def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix make-c``."""
    parser.add_argument("--dataset", required=True, help="source images: a Hub id, a known name (cifar10, with "
                        "--data-dir), a save_to_disk folder, parquet/arrow files, an image folder or an npz")
    parser.add_argument("--data-dir", default=None, help="local copy of a named dataset")
    parser.add_argument("--split", default=None, help="split to corrupt (default: the evaluation split)")
    parser.add_argument("--suite", choices=("c", "c-bar"), default="c",
                        help="c: the 15 + 4 corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, 2019); "
                             f"c-bar: the 10 of CIFAR-10-C-bar ({', '.join(CBAR_CORRUPTIONS)}) from {CBAR_PAPER}, "
                             "which has no download and must be generated; with --params imagenet only the 5 "
                             "ImageNet-C-bar corruptions implemented here, chosen with --corruptions")
    parser.add_argument("--params", choices=sorted(PARAMS), default="cifar",
                        help="parameter table: cifar (32 px, make_cifar_c) or imagenet (224 px, make_imagenet_c)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--layout", choices=("npy", "folder"), default=None,
                        help="npy (CIFAR-10-C files; default for cifar) or folder (ImageNet-C tree; default for "
                             "imagenet)")
    parser.add_argument("--corruptions", type=_comma_list, default=None,
                        help="comma-separated subset (default: all 19 of --suite c, the 15 benchmark ones + 4 "
                             "extra; all 10 of --suite c-bar)")
    parser.add_argument("--max-per-cell", type=int, default=None,
                        help="use a seeded random subset of N source images (the same in every cell)")
    parser.add_argument("--class-balanced", action="store_true",
                        help="with --max-per-cell: the same number of images from every class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop", type=int, default=None,
                        help="resize (shorter side crop/0.875) and centre-crop to this size (default 224 for "
                             "imagenet, none for cifar)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per corruption call")
    parser.add_argument("--num-workers", type=int, default=1, help="processes corrupting batches in parallel")
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix make-c``."""
    from timm_dynmix.robustness.make_c import make_c

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = make_c(args.dataset, args.out, params=args.params, data_dir=args.data_dir, split=args.split,
                      layout=args.layout, corruptions=args.corruptions, max_per_cell=args.max_per_cell,
                      seed=args.seed, crop=args.crop, batch_size=args.batch_size, num_workers=args.num_workers,
                      image_column=args.image_column, label_column=args.label_column,
                      progress=not args.no_progress, class_balanced=args.class_balanced, suite=args.suite)
    done = {c: v for c, v in manifest["corruptions"].items() if c not in manifest.get("skipped", [])}
    print(f"wrote {len(done)} corruption(s) x 5 severities x {manifest['num_images']} images to {args.out} "
          f"({manifest['layout']} layout, {manifest['params']} parameters)")
    if manifest.get("skipped"):
        print(f"skipped (already complete): {', '.join(manifest['skipped'])}")
    if done:
        print("seconds per 1000 images (5 severities = 5000 corrupted images count as 5 x 1000):")
        for c, v in done.items():
            print(f"  {c:18s} {v['seconds_per_1000_images']:8.2f}")
    return 0
