"""Augmentation throughput per CPU core: timm AugMix vs torchvision AugMix vs DynMix, AugMix, PRIME (PIL and batched).

Claim checked (issue 3): per 3-view training sample (clean + 2 augmented views, normalized float tensors), on one
CPU thread in one process,

* DynMix on PIL images (``timm_dynmix.create_transform(..., aug="dynmix...")``) is >= 1.5x timm's AugMix
  (``augmix-m3-w3`` via ``timm.data.create_transform(separate=True)`` + ``AugMixDataset(num_splits=3)``, as timm's
  train.py uses it) at 32 px and at 224 px;
* ``DynamicMixupBatch.views`` on a uint8 batch of 256 is >= 20x timm's AugMix at 32 px and >= 10x at 224 px;
* ``AugMixBatch.views`` (the official AugMix, batched, issue 5) and ``PrimeBatch.views`` are >= 15x timm's AugMix
  per thread at 32 px.

Rows (every row makes the same 3-view samples from the same source images):

* ``timm AugMix``: ``AugMixDataset[i]``: random resized crop + flip, then clean + 2 AugMix views, ToTensor+Normalize.
* ``torchvision AugMix``: timm's crop + flip, then clean + 2 ``torchvision.transforms.v2.AugMix()`` views
  (severity 3, width 3) on the uint8 tensor, per image.
* ``official AugMix (timm_dynmix)``: the papers' baseline (``--aug augmix``: 9 ops, float mixing), timm's crop +
  flip, then clean + 2 views, normalized.
* ``DynMix PIL``: ``create_transform(size, is_training=True, aug=...)`` views of one image (pad-crop + flip at 32 px,
  random resized crop + flip at 224 px).
* ``DynMix batched, views``: ``DynamicMixupBatch.views`` of a uint8 batch of crops (the augmentation that moves
  into the training step); ``end-to-end`` adds the per-image uint8 crop + flip the loader still does
  (``create_transform(..., aug=None, normalize=False)``) and the collate, all on the same core; ``loader only`` is
  that crop + collate alone (the floor of the device path on the CPU side).
* With ``--tuned-malloc``, the batched CPU rows again in a subprocess whose allocators keep freed memory and use huge
  pages (``GLIBC_TUNABLES`` mmap/trim thresholds, PyTorch's ``THP_MEM_ALLOC_ENABLE=1``): batch-size tensors
  otherwise page-fault on every call, which is slow on VMs. The per-image rows allocate small tensors and do not
  depend on this.
* ``AugMix batched CPU, views``: ``AugMixBatch("augmix").views`` of the same uint8 batch (one generator);
  ``per-sample seeds`` draws every image's parameters from its own ``(seed, epoch, index, view)`` generator, as the
  training step does. ``PRIME batched CPU, views``: ``PrimeBatch.views`` when ``timm_dynmix.augment.prime`` exists
  (else skipped, with a note in the report).
* With CUDA present: ``DynamicMixupBatch.views`` and ``AugMixBatch.views`` on the GPU (batch 256, synchronized).
* ``--threads 1 2``: every row again with 2 threads: the batched rows with ``torch.set_num_threads(2)``, the
  per-image anchors (timm and torchvision AugMix) with a 2-worker DataLoader (batches of 32 samples), which is how
  a per-image pipeline uses a second core. Ratios are against timm's AugMix at the same number of threads.

32 px images: the CIFAR-10 test set from ../shared (the project's JPEG-rebuilt copy), else 32x32 box-downscaled crops
of scikit-learn's sample photos. 224 px: 256x256 crops of scikit-learn's china.jpg and flower.jpg (427x640 photos),
cropped to 224 by each pipeline. Samples/s is the median of ``--runs`` timed runs after one warm-up run.

Usage::

    python benchmarks/augment_throughput.py [--quick] [--out augment_throughput.json] [--tuned-malloc] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import timm_dynmix  # noqa: E402
from timm_dynmix import AugMixBatch, DynamicMixupBatch, create_transform  # noqa: E402

CLAIM = ("per 3-view sample on 1 CPU thread: DynMix PIL >= 1.5x timm AugMix (augmix-m3-w3) at 32 and 224 px; "
         "DynamicMixupBatch (CPU, batch 256) >= 20x at 32 px and >= 10x at 224 px; AugMixBatch and PrimeBatch "
         ">= 15x at 32 px")
SEED = 0
CONFIGS = {32: "dynmix", 224: "dynmix-oimagenet"}
AUGMIX_CONFIG = "augmix"  # the official AugMix (severity 3, width 3, depth 1-3), as timm's augmix-m3-w3 at both sizes
TARGETS = [("DynMix PIL", 32, 1.5), ("DynMix PIL", 224, 1.5),
           ("DynMix batched CPU, views", 32, 20.0), ("DynMix batched CPU, views", 224, 10.0),
           ("AugMix batched CPU, views", 32, 15.0), ("PRIME batched CPU, views", 32, 15.0)]


def prime_class() -> tuple[type | None, str]:
    """``PrimeBatch`` if this checkout has it (``timm_dynmix.augment.prime``), else None and why not."""
    try:
        from timm_dynmix.augment.prime import PrimeBatch
    except ImportError as e:
        return None, f"PRIME rows skipped: PrimeBatch is not importable here ({e})"
    return PrimeBatch, "PrimeBatch('prime') with its default config"
TUNED_ENV = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------------
def machine() -> dict:
    model, cpus = platform.processor() or "unknown", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
        cpus = int(fields.get("CPU(s)", cpus))
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    info = {"cpu_model": model, "cpus": cpus, "platform": platform.platform(), "threads_used": 1}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict:
    import timm
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "pillow": Image.__version__, "numpy": np.__version__,
            "timm_dynmix": timm_dynmix.__version__}


def source_images(size: int, count: int) -> tuple[list[Image.Image], str]:
    """Natural source images for one benchmark size, and a sentence saying which."""
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(SEED)
    photos = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    if size <= 64:
        shared = Path(os.environ.get("TIMM_DYNMIX_SHARED", ROOT.parent / "shared"))
        npz = shared / "data" / "cifar10" / "cifar10_test_uint8.npz"
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as z:
                x = z["x_test"][:count]
            return [Image.fromarray(a) for a in x], f"the first {count} CIFAR-10 test images (../shared JPEG copy)"
        out = []
        for i in range(count):
            p = photos[i % 2]
            y, x0 = int(rng.integers(0, p.shape[0] - 4 * size)), int(rng.integers(0, p.shape[1] - 4 * size))
            crop = Image.fromarray(p[y:y + 4 * size, x0:x0 + 4 * size])
            out.append(crop.resize((size, size), Image.Resampling.BOX))
        return out, f"{count} {size}x{size} box-downscaled crops of scikit-learn's china.jpg and flower.jpg"
    src = 256
    out = []
    for i in range(count):
        p = photos[i % 2]
        y, x0 = int(rng.integers(0, p.shape[0] - src)), int(rng.integers(0, p.shape[1] - src))
        out.append(Image.fromarray(p[y:y + src, x0:x0 + src]))
    return out, f"{count} {src}x{src} crops of scikit-learn's china.jpg and flower.jpg (427x640 photos)"


def timed(fn: Callable[[], object], runs: int, sync: Callable[[], None] | None = None) -> list[float]:
    fn()  # warm-up
    if sync:
        sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images, self.transform = images, None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return (img if self.transform is None else self.transform(img)), 0


# ----------------------------------------------------------------------------------------------------------------
def per_image_rows(size: int, images: list[Image.Image], per_run: int, runs: int) -> dict[str, list[float]]:
    import timm.data
    from torchvision.transforms import v2

    rows: dict[str, list[float]] = {}

    def loop(get: Callable[[int], object]) -> Callable[[], None]:
        return lambda: [get(i % len(images)) for i in range(per_run)]

    timm_t = timm.data.create_transform(size, is_training=True, auto_augment="augmix-m3-w3", separate=True,
                                        mean=MEAN, std=STD)
    ds = timm.data.AugMixDataset(_ListDataset(images), num_splits=3)
    ds.transform = timm_t
    rows["timm AugMix"] = timed(loop(lambda i: ds[i]), runs)

    primary = timm_t[0]
    tv_aug = v2.AugMix()
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    to_tensor = v2.PILToTensor()

    def tv_views(i: int):
        x = to_tensor(primary(images[i]))
        return to_float(x), to_float(tv_aug(x)), to_float(tv_aug(x))

    rows["torchvision AugMix"] = timed(loop(tv_views), runs)

    base, official, final = create_transform(size, is_training=True, aug="augmix", separate=True, mean=MEAN, std=STD)

    def official_views(i: int):
        img = base(images[i])
        return final(img), final(official(img)), final(official(img))

    rows["official AugMix (timm_dynmix)"] = timed(loop(official_views), runs)

    ours = create_transform(size, is_training=True, aug=CONFIGS[size], mean=MEAN, std=STD)
    rows["DynMix PIL"] = timed(loop(lambda i: ours(images[i])), runs)
    return rows


class _Cycle(torch.utils.data.Dataset):
    """``length`` samples of ``get(i % n)``: a per-image pipeline behind a DataLoader."""

    def __init__(self, get: Callable[[int], object], n: int, length: int):
        self.get, self.n, self.length = get, n, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.get(i % self.n)


def per_image_rows_workers(size: int, images: list[Image.Image], per_run: int, runs: int,
                           workers: int) -> dict[str, list[float]]:
    """The per-image anchors (timm and torchvision AugMix) through a DataLoader with ``workers`` processes."""
    import timm.data
    from torchvision.transforms import v2

    timm_t = timm.data.create_transform(size, is_training=True, auto_augment="augmix-m3-w3", separate=True,
                                        mean=MEAN, std=STD)
    ds = timm.data.AugMixDataset(_ListDataset(images), num_splits=3)
    ds.transform = timm_t
    primary, tv_aug = timm_t[0], v2.AugMix()
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    to_tensor = v2.PILToTensor()

    def tv_views(i: int):
        x = to_tensor(primary(images[i]))
        return to_float(x), to_float(tv_aug(x)), to_float(tv_aug(x))

    rows: dict[str, list[float]] = {}
    for name, get in (("timm AugMix", lambda i: ds[i]), ("torchvision AugMix", tv_views)):
        dl = torch.utils.data.DataLoader(_Cycle(get, len(images), per_run), batch_size=32, num_workers=workers,
                                         persistent_workers=True)
        rows[name] = timed(lambda dl=dl: [None for _ in dl], runs)
        del dl
    return rows


def batched_rows(size: int, images: list[Image.Image], batch: int, runs: int, cuda: bool,
                 dynmix_extra: bool = True) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    loader_t = create_transform(size, is_training=True, aug=None, normalize=False)

    def load() -> torch.Tensor:
        return torch.stack([loader_t(images[i % len(images)]) for i in range(batch)])

    x = load()
    aug = DynamicMixupBatch(CONFIGS[size], generator=torch.Generator().manual_seed(SEED))
    rows["DynMix batched CPU, views"] = timed(lambda: aug.views(x, MEAN, STD), runs)
    if dynmix_extra:
        rows["DynMix batched CPU, end-to-end"] = timed(lambda: aug.views(load(), MEAN, STD), runs)
        rows["loader only (uint8 crop + collate)"] = timed(load, runs)
    augmix = AugMixBatch(AUGMIX_CONFIG, generator=torch.Generator().manual_seed(SEED))
    rows["AugMix batched CPU, views"] = timed(lambda: augmix.views(x, MEAN, STD), runs)
    indices = torch.arange(batch)
    rows["AugMix batched CPU, views, per-sample seeds"] = timed(
        lambda: augmix.views(x, MEAN, STD, seed=SEED, epoch=0, indices=indices), runs)
    prime, _ = prime_class()
    if prime is not None:
        pr = prime("prime")
        rows["PRIME batched CPU, views"] = timed(
            lambda: pr.views(x, MEAN, STD, generator=torch.Generator().manual_seed(SEED)), runs)
    if cuda:
        xc = x.cuda()
        gpu = DynamicMixupBatch(CONFIGS[size], generator=torch.Generator(device="cuda").manual_seed(SEED))
        rows["DynMix batched CUDA, views"] = timed(lambda: gpu.views(xc, MEAN, STD), runs, torch.cuda.synchronize)
        gpu_am = AugMixBatch(AUGMIX_CONFIG, generator=torch.Generator(device="cuda").manual_seed(SEED))
        rows["AugMix batched CUDA, views"] = timed(lambda: gpu_am.views(xc, MEAN, STD), runs, torch.cuda.synchronize)
    return rows


def tuned_malloc_rows(size: int, batch: int, runs: int) -> dict[str, list[float]]:
    env = dict(os.environ, GLIBC_TUNABLES=TUNED_ENV, THP_MEM_ALLOC_ENABLE="1")
    cmd = [sys.executable, __file__, "--child-batched", str(size), "--batch", str(batch), "--runs", str(runs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    return {f"{name} (tuned allocator)": t for name, t in rows.items() if "CUDA" not in name}


# ----------------------------------------------------------------------------------------------------------------
def summarize(rows: dict[str, list[float]], samples: dict[str, int]) -> list[dict]:
    base = samples["timm AugMix"] / statistics.median(rows["timm AugMix"])
    out = []
    for name, times in rows.items():
        rate = samples[name] / statistics.median(times)
        out.append({"name": name, "samples_per_s": rate, "ratio_vs_timm_augmix": rate / base,
                    "samples_per_run": samples[name], "run_seconds": times})
    return out


def table(results: dict[int, list[dict]]) -> str:
    lines = ["| size | pipeline (3-view samples) | samples/s | x timm AugMix |", "|---|---|---:|---:|"]
    for size, rows in results.items():
        for r in rows:
            lines.append(f"| {size} px | {r['name']} | {r['samples_per_s']:.0f} | {r['ratio_vs_timm_augmix']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few samples per row: a smoke test, not a measure")
    parser.add_argument("--out", default="augment_throughput.json", help="JSON output path")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per row (default 5, quick 2)")
    parser.add_argument("--batch", type=int, default=None, help="batch of the batched rows (default 256)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224], choices=[32, 224])
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="also time the batched CPU rows with allocators that keep freed memory (subprocess)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], choices=[1, 2],
                        help="thread counts to measure (1: the claims; 2: batched rows with 2 torch threads, the "
                             "per-image anchors with 2 DataLoader workers)")
    parser.add_argument("--child-batched", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    random.seed(SEED)
    np.random.seed(SEED)
    runs = args.runs or (2 if args.quick else 5)
    batch = args.batch or (16 if args.quick else 256)
    if runs < 1 or batch < 1:
        parser.error("--runs and --batch must be >= 1")

    if args.child_batched:  # subprocess for --tuned-malloc: batched CPU rows only, JSON on the last line
        images, _ = source_images(args.child_batched, 64)
        rows = batched_rows(args.child_batched, images, batch, runs, cuda=False)
        print(json.dumps(rows))
        return 0

    per_run = {32: 8, 224: 4} if args.quick else {32: 256, 224: 48}
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    info, vers = machine(), versions()
    info["threads_used"] = sorted(set(args.threads))
    _, prime_note = prime_class()
    load_start = os.getloadavg()
    header = [
        "# DynMix augmentation throughput" + (" (--quick smoke test: not a measurement)" if args.quick else ""),
        f"claim: {CLAIM}",
        f"date: {date}",
        f"machine: {info['cpu_model']}, {info['cpus']} CPUs; threads {info['threads_used']} (1: "
        "torch.set_num_threads(1), single process)"
        + (f"; GPU: {info['gpu']}" if "gpu" in info else "; no CUDA device"),
        f"load average at start: {', '.join(f'{v:.2f}' for v in load_start)}",
        "seeds: torch/random/numpy 0, DynamicMixupBatch generator 0, image selection 0",
        "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"configs: {CONFIGS[32]} at 32 px, {CONFIGS[224]} at 224 px; AugMixBatch {AUGMIX_CONFIG}; timm augmix-m3-w3; "
        "torchvision v2.AugMix()",
        f"PRIME: {prime_note}",
        f"timing: median of {runs} runs after 1 warm-up; per-image rows {per_run} samples per run; batch {batch}",
    ]
    print("\n".join(header), flush=True)

    t_start = time.perf_counter()
    results: dict[int, list[dict]] = {}
    sources: dict[int, str] = {}
    for size in args.sizes:
        images, sources[size] = source_images(size, 64)
        print(f"{size} px images: {sources[size]}", flush=True)
        rows = per_image_rows(size, images, per_run[size], runs)
        samples = dict.fromkeys(rows, per_run[size])
        brows = batched_rows(size, images, batch, runs, torch.cuda.is_available())
        if args.tuned_malloc and sys.platform.startswith("linux"):
            brows.update(tuned_malloc_rows(size, batch, runs))
        rows.update(brows)
        samples.update(dict.fromkeys(brows, batch))
        results[size] = summarize(rows, samples)
    results_threads: dict[int, dict[int, list[dict]]] = {}
    for threads in sorted(set(args.threads) - {1}):
        torch.set_num_threads(threads)
        results_threads[threads] = {}
        for size in args.sizes:
            images, _ = source_images(size, 64)
            rows = per_image_rows_workers(size, images, per_run[size] * threads, runs, threads)
            samples = dict.fromkeys(rows, per_run[size] * threads)
            brows = batched_rows(size, images, batch, runs, False, dynmix_extra=False)
            rows.update(brows)
            samples.update(dict.fromkeys(brows, batch))
            results_threads[threads][size] = summarize(rows, samples)
        torch.set_num_threads(1)

    checks = []
    for name, size, target in TARGETS:
        row = next((r for r in results.get(size, []) if r["name"] == name), None)
        if row is not None:
            checks.append({"pipeline": name, "size": size, "target_ratio": target,
                           "ratio": row["ratio_vs_timm_augmix"], "met": row["ratio_vs_timm_augmix"] >= target})
    print("\n" + table(results) + "\n")
    for threads, res in results_threads.items():
        print(f"{threads} threads (batched rows: torch threads; anchors: DataLoader workers):\n" + table(res) + "\n")
    for c in checks:
        print(f"target {c['pipeline']} at {c['size']} px: >= {c['target_ratio']}x timm AugMix: "
              f"{c['ratio']:.2f}x {'MET' if c['met'] else 'MISSED'}")
    elapsed = time.perf_counter() - t_start
    load_end = os.getloadavg()
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in load_end)}; benchmark time {elapsed:.0f} s")

    report = {"claim": CLAIM, "quick": args.quick, "date": date, "machine": info, "versions": vers,
              "seeds": {"torch": SEED, "random": SEED, "numpy": SEED, "generator": SEED, "images": SEED},
              "configs": {str(k): v for k, v in CONFIGS.items()}, "images": {str(k): v for k, v in sources.items()},
              "runs": runs, "batch": batch, "per_image_samples_per_run": {str(k): v for k, v in per_run.items()},
              "load_average": {"start": list(load_start), "end": list(load_end)}, "seconds": elapsed,
              "results": {str(k): v for k, v in results.items()}, "targets": checks, "prime": prime_note,
              "results_threads": {str(t): {str(k): v for k, v in res.items()} for t, res in results_threads.items()}}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
