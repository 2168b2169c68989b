"""Training throughput: images per second of a full training step, by augmentation, on this machine.

Claim checked: DynMix + JSD costs about what AugMix + JSD costs per image (both make 3 views), and running DynMix
on the device (``--aug-device model``, the batched implementation) moves the augmentation out of the DataLoader.

Each variant trains ResNet-20 (CIFAR, 32 px) for ``--steps`` optimizer steps of ``--batch-size`` images with the
project's trainer (``timm_dynmix.train.train``) on the CIFAR-10 copy in ../shared/data/cifar10 (the embedded digits
data when it is absent), with the trainer's defaults for threads and DataLoader workers. Images/s counts source
images (a JSD step processes 3 views of each); the epoch timer includes DataLoader start-up, so the steps should
be many enough for it to be small. Seed 0 throughout.

    python benchmarks/train_throughput.py [--steps 40] [--batch-size 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from timm_dynmix.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"

VARIANTS = [  # (label, TrainConfig overrides)
    ("none (CE), loader", {"aug": "none"}),
    ("augmix + JSD, loader", {"aug": "augmix"}),
    ("dynmix + JSD, loader", {"aug": "dynmix"}),
    ("dynmix + JSD, model", {"aug": "dynmix", "aug_device": "model"}),
]


def machine() -> str:
    """CPU model, usable cores and GPU, for the report header."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}, {cores} cores, {gpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="resnet20_cifar")
    parser.add_argument("--variants", nargs="*", default=None, help="labels to run (default: all)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    have_cifar = (CIFAR10 / "cifar10_train_jpeg.npz").is_file()
    data = {"dataset": "cifar10", "data_dir": str(CIFAR10)} if have_cifar else {"dataset": "digits"}
    print(f"# training throughput: {args.model} at 32 px, batch {args.batch_size}, {args.steps} steps per variant")
    print(f"# machine: {machine()}; torch {torch.__version__}; data: {data['dataset']}; {time.strftime('%Y-%m-%d')}")
    rows = []
    for label, overrides in VARIANTS:
        if args.variants and label not in args.variants:
            continue
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(model=args.model, batch_size=args.batch_size, epochs=1, max_steps=args.steps,
                              max_train_samples=args.batch_size * args.steps, max_eval_samples=256, output_dir=out,
                              seed=0, **data, **overrides)
            try:
                res = train(cfg)
            except ValueError as e:
                print(f"{label}: skipped ({e})", file=sys.stderr)
                continue
        rows.append({"variant": label, "images_per_s": res["train_samples_per_s"], "steps": res["steps"],
                     "views_per_image": 3 if res["jsd"] else 1})
    base = rows[0]["images_per_s"] if rows else 1.0
    print("\n| variant | images/s | views/image | vs none |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['images_per_s']:.0f} | {r['views_per_image']} | "
              f"{r['images_per_s'] / base:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
