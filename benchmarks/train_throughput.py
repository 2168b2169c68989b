"""Training throughput: images per second of a full training step, by augmentation, on this machine.

Claims checked (issues 4 and 11):

* DynMix + JSD costs about what AugMix + JSD costs per image (both make 3 views), and running DynMix in the step
  (``--aug-device model``, the batched implementation, on the in-memory data path) is the fastest way to train it;
* the project's trainer with DynMix + JSD reaches >= 85% of the compute limit: the same model's forward + backward
  + optimizer step (JSD loss) on 3-view batches that are already in memory, with the same precision and threads
  (the faster of fp32 and bf16 autocast + channels-last);
* it is >= 1.25x timm's own ``train.py`` with AugMix + JSD (``--aa augmix-m3-w3 --aug-splits 3 --jsd-loss``, same
  model, batch, threads and images), at timm's best here: its defaults or ``--amp --amp-dtype bfloat16
  --channels-last``;
* (issue 5) the official AugMix + JSD in the step (``--aug augmix``: ``AugMixBatch`` on the in-memory path, per-sample
  seeded views) is >= 1.1x timm's ``train.py`` AugMix + JSD at its best; PRIME + JSD in the step (``--aug prime``,
  ``PrimeBatch``) is reported beside it (no target).

Each trainer variant trains ``--model`` for ``--steps`` optimizer steps of ``--batch-size`` images with
``timm_dynmix.train.train`` on a seeded subset of the CIFAR-10 copy in ../shared/data/cifar10 (the embedded digits
data when it is absent). timm's ``train.py`` is not in the timm wheel: give its path with ``--timm-train-py``
(a checkout of huggingface/pytorch-image-models); the benchmark writes the same images as PNG files into a
temporary image folder for it and runs it in a subprocess (``import timm_dynmix`` first, so that it knows the
CIFAR models). Images/s count source images (a JSD step processes 3 views of each); for the trainer over the whole
epoch (first step included), for timm's train.py from its per-update times (first update included, which holds
its DataLoader start-up), for the compute limit over the timed steps after 2 warm-up steps. Seed 0 throughout.

    python benchmarks/train_throughput.py [--steps 40] [--batch-size 128] [--threads 2] \\
        [--timm-train-py path/to/pytorch-image-models/train.py] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from timm_dynmix.runtime import cpu_model
from timm_dynmix.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"

VARIANTS = [  # (label, TrainConfig overrides)
    ("none (CE), in memory", {"aug": "none"}),
    ("augmix + JSD, loader (timm augmix-m3-w3)", {"aug": "augmix-timm"}),
    ("dynmix + JSD, loader", {"aug": "dynmix", "aug_device": "loader"}),
    ("dynmix + JSD, in the step, in memory", {"aug": "dynmix"}),
    ("dynmix + JSD, in the step, in memory, fp32", {"aug": "dynmix", "mixed_precision": "no"}),
    ("augmix + JSD, loader (official, per image)", {"aug": "augmix", "aug_device": "loader"}),
    ("augmix + JSD, in the step, in memory", {"aug": "augmix"}),
    ("prime + JSD, in the step, in memory", {"aug": "prime"}),
]


def machine() -> str:
    """CPU model, usable cores and GPU, for the report header."""
    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}, {cores} cores, {gpu}"


def subset(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """The trainer's ``max_train_samples`` subset (sorted seeded choice), so that every row trains on it."""
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def compute_limit(model_name: str, batch_size: int, steps: int, precision: str, threads: int,
                  compile_model: bool = False) -> float:
    """Images/s of fwd + bwd + SGD step with the JSD loss on 3-view batches already in memory (random pixels).

    With ``compile_model`` the model runs through ``torch.compile`` (default inductor mode); its compilation happens
    in the 2 warm-up steps, which are not timed.
    """
    import timm

    import timm_dynmix.models.cifar  # noqa: F401
    from timm_dynmix.loss import JsdLoss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=10)
    bf16 = precision == "bf16"
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    criterion = JsdLoss(num_splits=3, weight=12.0)
    forward = torch.compile(model) if compile_model else model
    batches = [torch.randn(3 * batch_size, 3, 32, 32).contiguous(memory_format=fmt) for _ in range(2)]
    y = torch.randint(0, 10, (batch_size,))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(batches[i % 2])
        loss = criterion(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return batch_size * steps / sum(times[2:])


def write_image_folder(root: Path, n_train: int, n_val: int, data: dict) -> None:
    """The trainer's training subset (and a few test images) as PNG files in timm's train/validation layout."""
    from timm_dynmix.data.datasets import decode_image, load_image_data

    loaded = load_image_data(data["dataset"], data_dir=data.get("data_dir"))
    for split, ds, n in (("train", loaded.train, n_train), ("validation", loaded.eval, n_val)):
        rows = subset(len(ds), n) if split == "train" else np.arange(n)
        for i in rows.tolist():
            row = ds[i]
            label = int(row[loaded.label_column])
            folder = root / split / f"{label:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            decode_image(row[loaded.image_column]).save(buf, format="PNG")
            (folder / f"{i:05d}.png").write_bytes(buf.getvalue())


def timm_train_py(path: Path, data_root: Path, out: Path, model: str, batch_size: int, threads: int,
                  workers: int, amp: bool) -> float:
    """Images/s of timm's train.py (AugMix + JSD, one epoch over the folder) from its logged update times."""
    args = ["--data-dir", str(data_root), "--model", model, "--num-classes", "10", "--input-size", "3", "32", "32",
            "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5", "-b", str(batch_size), "--epochs", "1",
            "--aa", "augmix-m3-w3", "--aug-splits", "3", "--jsd-loss", "--device", "cpu", "--workers", str(workers),
            "--log-interval", "1", "--output", str(out), "--warmup-epochs", "0", "--lr", "0.1", "--seed", "0"]
    if amp:
        args += ["--amp", "--amp-dtype", "bfloat16", "--channels-last"]
    code = ("import runpy, sys, torch, timm_dynmix\n"
            f"torch.set_num_threads({threads})\n"
            f"sys.argv = [{str(path)!r}] + {args!r}\n"
            f"runpy.run_path({str(path)!r}, run_name='__main__')\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(path.parent))
    log = proc.stdout + proc.stderr
    times = [float(t) for t in re.findall(r"Train: 0 \[.*?Time: ([0-9.]+)s,", log)]
    if proc.returncode != 0 or not times:
        raise RuntimeError(f"timm train.py failed (exit {proc.returncode}):\n{log[-3000:]}")
    return batch_size * len(times) / sum(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="resnet20_cifar")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: the usable cores)")
    parser.add_argument("--timm-train-py", default=None, help="path of timm's train.py (rows skipped without it)")
    parser.add_argument("--timm-workers", type=int, default=1, help="DataLoader workers of timm's train.py")
    parser.add_argument("--variants", nargs="*", default=None, help="labels of trainer rows to run (default: all)")
    parser.add_argument("--precisions", nargs="+", choices=("no", "bf16"), default=["no", "bf16"],
                        help="precisions of the compute-limit and timm rows (default: both; on a CPU without native "
                             "bf16, bf16 is emulated and only slow)")
    parser.add_argument("--compile", action="store_true",
                        help="add a compute-limit row with torch.compile (bf16 + channels-last; compile time untimed)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())

    have_cifar = (CIFAR10 / "cifar10_train_jpeg.npz").is_file()
    data = {"dataset": "cifar10", "data_dir": str(CIFAR10)} if have_cifar else {"dataset": "digits"}
    n_images = args.batch_size * args.steps
    print(f"# training throughput: {args.model} at 32 px, batch {args.batch_size}, {args.steps} steps per row, "
          f"{threads} threads")
    print(f"# machine: {machine()}; torch {torch.__version__}; data: {data['dataset']}; "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}; load average at start {os.getloadavg()}")
    rows = []
    for label, overrides in VARIANTS:
        if args.variants and label not in args.variants:
            continue
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(model=args.model, batch_size=args.batch_size, epochs=1, max_steps=args.steps,
                              max_train_samples=n_images, max_eval_samples=256, output_dir=out, seed=0,
                              num_threads=threads, **data, **overrides)
            try:
                res = train(cfg)
            except ValueError as e:
                print(f"{label}: skipped ({e})", file=sys.stderr)
                continue
        rows.append({"row": f"trainer: {label}", "images_per_s": res["train_samples_per_s"],
                     "views_per_image": 3 if res["jsd"] else 1, "precision": res["mixed_precision"],
                     "channels_last": res["channels_last"], "data_in_memory": res["data_in_memory"]})
    for precision in args.precisions:
        ips = compute_limit(args.model, args.batch_size, args.steps, precision, threads)
        rows.append({"row": f"compute limit (JSD step on 3-view batches in memory), {precision}",
                     "images_per_s": ips, "views_per_image": 3, "precision": precision,
                     "channels_last": precision == "bf16", "data_in_memory": True})
    if args.compile:
        ips = compute_limit(args.model, args.batch_size, args.steps, "bf16", threads, compile_model=True)
        rows.append({"row": "compute limit (JSD step on 3-view batches in memory), bf16, torch.compile",
                     "images_per_s": ips, "views_per_image": 3, "precision": "bf16", "channels_last": True,
                     "data_in_memory": True})
    if args.timm_train_py:
        path = Path(args.timm_train_py).resolve()
        with tempfile.TemporaryDirectory() as tmp:
            write_image_folder(Path(tmp) / "data", n_images, 64, data)
            for amp in [p == "bf16" for p in args.precisions]:
                label = "--amp --amp-dtype bfloat16 --channels-last" if amp else "defaults"
                ips = timm_train_py(path, Path(tmp) / "data", Path(tmp) / f"out{int(amp)}", args.model,
                                    args.batch_size, threads, args.timm_workers, amp)
                rows.append({"row": f"timm train.py AugMix + JSD, {label}", "images_per_s": ips,
                             "views_per_image": 3, "precision": "bf16" if amp else "no", "channels_last": amp,
                             "data_in_memory": False})

    print("\n| row | images/s | views/image | precision |\n|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['row']} | {r['images_per_s']:.0f} | {r['views_per_image']} | {r['precision']}"
              f"{' + channels-last' if r['channels_last'] else ''} |")
    ours = [r for r in rows if r["row"] == "trainer: dynmix + JSD, in the step, in memory"]
    limit = max((r["images_per_s"] for r in rows if r["row"].startswith("compute limit")), default=None)
    timm_best = max((r["images_per_s"] for r in rows if r["row"].startswith("timm train.py")), default=None)
    summary = {}
    if ours and limit:
        summary["trainer_vs_fastest_limit"] = ours[0]["images_per_s"] / limit
        print(f"\ntrainer (dynmix + JSD) / fastest compute limit: {summary['trainer_vs_fastest_limit']:.2f}")
    if ours and timm_best:
        summary["trainer_vs_timm_best"] = ours[0]["images_per_s"] / timm_best
        print(f"trainer (dynmix + JSD) / timm train.py best: {summary['trainer_vs_timm_best']:.2f}x")
    augmix_step = [r for r in rows if r["row"] == "trainer: augmix + JSD, in the step, in memory"]
    if augmix_step and timm_best:
        summary["augmix_step_vs_timm_best"] = augmix_step[0]["images_per_s"] / timm_best
        print(f"trainer (augmix + JSD in the step) / timm train.py best: {summary['augmix_step_vs_timm_best']:.2f}x "
              f"(target >= 1.1x)")
    prime_step = [r for r in rows if r["row"] == "trainer: prime + JSD, in the step, in memory"]
    if prime_step and timm_best:
        summary["prime_step_vs_timm_best"] = prime_step[0]["images_per_s"] / timm_best
        print(f"trainer (prime + JSD in the step) / timm train.py best: {summary['prime_step_vs_timm_best']:.2f}x")
    print(f"# load average at the end {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                                               "threads": threads, "rows": rows, "summary": summary,
                                               "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
