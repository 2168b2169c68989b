"""The Accelerate training loop: ``train(TrainConfig(...))``, DynMix (or a timm baseline) + JSD with exact resume.

:func:`train` is a loop in the style of Accelerate's ``cv_example.py`` in named steps: :func:`setup_run`,
:func:`resume_progress`, per epoch :func:`train_epoch` and :func:`end_epoch`, then :func:`finish_run`.
``examples/train.py`` writes the same loop out in one function, from the same pieces (tested to train the same
weights):

* :func:`create_accelerator`: one Accelerator; bf16 autocast on CPUs that compute it natively, threads, the seed;
* :func:`create_train_model` and :func:`~timm_dynmix.train.data.prepare_data`: the model and its data (views,
  the per-epoch seeded, rank-sharded sampler, the in-memory path for small images), so that ranks see disjoint data
  and draw different augmentations and a resumed run (``resume="latest"``) reproduces an uninterrupted one
  (bit-identical on CPU with deterministic algorithms);
* :func:`create_optimizer`, :func:`create_ema`, :func:`create_criterion`: timm's optimizer and scheduler, the weight
  average, the loss (:class:`~timm_dynmix.loss.JsdLoss` with views) and Mixup;
* :func:`create_step_augmentation` (the views, made in the step), :class:`ModelInput` (normalization, memory
  format) and :func:`batch_preparer` (both, then Mixup): a loader batch to the model's input;
* :func:`train_step`, :func:`evaluate`, :func:`epoch_record`: one optimizer step, the evaluation, an epoch's record;
* checkpoints (:mod:`timm_dynmix.train.checkpoint`) and the outputs (:func:`build_results`, :func:`save_outputs`):
  the model in timm's hub format with its card, ``results.json`` and the resolved ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from torch import nn

from timm_dynmix.data.datasets import ImageData, load_image_data
from timm_dynmix.fileio import atomic_write_bytes, atomic_write_json
from timm_dynmix.loss import JsdLoss
from timm_dynmix.rng import derive_seed
from timm_dynmix.runtime import Uint8Normalize, cpu_has_native_bf16, gathered_outputs, has_accelerator, usable_cpus
from timm_dynmix.train.checkpoint import (
    checkpoint_state,
    find_latest_checkpoint,
    load_resume_state,
    resume_checkpoint,
    save_checkpoint,
)
from timm_dynmix.train.config import TrainConfig
from timm_dynmix.train.data import TrainData, prepare_data
from timm_dynmix.train.resolved import resolved_config
from timm_dynmix.version import versions

__all__ = ["train", "TrainProgress", "TrainRun", "ModelInput", "setup_run", "resume_progress", "start_trackers",
           "train_epoch", "end_epoch", "finish_run", "create_step_augmentation", "create_accelerator",
           "create_train_model", "init_model", "resolve_stem", "create_optimizer", "create_ema", "create_criterion",
           "batch_preparer", "train_step", "evaluate", "evaluate_top1", "epoch_record", "write_run_config",
           "build_results", "run_status", "done_message", "cross_rank_diagnostics", "save_outputs"]

logger = logging.getLogger(__name__)

_WHITENING_SAMPLES = 5000

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainProgress:
    """Where a run is: the epoch and batch it continues from, optimizer steps, the per-epoch records, timing."""

    epoch: int = 0
    start_batch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    samples_seen: int = 0
    train_time: float = 0.0
    stop: bool = False

    @property
    def metrics(self) -> dict[str, Any]:
        """The last epoch's record without its epoch number (what ``results.json`` calls ``metrics``)."""
        return {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "epoch"}


# ------------------------------------------------------------------------------------------------------- train
@dataclass
class TrainRun:
    """Everything :func:`train` sets up before its loop (:func:`setup_run`): the pieces ``examples/train.py`` makes
    one by one."""

    accelerator: Any
    cfg: TrainConfig
    native_bf16: bool | None
    model: nn.Module
    pcfg: dict[str, Any]
    td: TrainData
    to_input: ModelInput
    optimizer: Any
    scheduler: Any
    lr: float
    eval_dl: Any
    ema: Any
    criterion: nn.Module
    prepare_batch: Callable[..., Batch]


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a classifier as ``cfg`` says and return the results (also written to ``output_dir/results.json``).

    The steps: :func:`setup_run` (accelerator, data, model, optimizer, loss), :func:`resume_progress` (where the
    run starts: ``cfg.resume``), then one :func:`train_epoch` and :func:`end_epoch` (record, evaluation, checkpoint)
    per epoch, then :func:`finish_run` (``results.json``, the model and its card).
    """
    cfg.validate()
    start_time = time.time()
    run = setup_run(cfg)
    progress, resume_from = resume_progress(run.cfg, run.accelerator)
    write_run_config(run.cfg, run.accelerator)
    start_trackers(run.cfg, run.accelerator)
    while progress.epoch < run.cfg.epochs and not progress.stop:
        end_epoch(run, progress, *train_epoch(run, progress, resume_from))
        resume_from = None
    return finish_run(run, progress, start_time)


def setup_run(cfg: TrainConfig) -> TrainRun:
    """The accelerator, data, model, optimizer, scheduler, weight average and loss of a run, prepared by Accelerate
    (the steps 1-4 of ``examples/train.py``)."""
    accelerator, cfg, native_bf16 = create_accelerator(cfg)
    data = load_image_data(cfg.dataset, data_dir=cfg.data_dir, image_column=cfg.image_column,
                           label_column=cfg.label_column, train_split=cfg.train_split, eval_split=cfg.eval_split,
                           streaming=cfg.streaming)
    model, pcfg = create_train_model(cfg, data, cfg.input_size)
    cfg, td = prepare_data(cfg, data, pcfg, accelerator)
    to_input = ModelInput(td.mean, td.std, cfg.channels_last, accelerator.device)
    model = init_model(model, cfg, td, to_input)
    optimizer, scheduler, lr = create_optimizer(cfg, model, td.steps_per_epoch, accelerator.num_processes)
    model, optimizer = accelerator.prepare(model, optimizer)
    eval_dl = accelerator.prepare(td.eval_dl) if td.eval_dl is not None else None
    accelerator.register_for_checkpointing(scheduler)
    ema = create_ema(cfg, model, accelerator)
    criterion, mixup = create_criterion(cfg, td.num_splits, data.num_classes)
    prepare_batch = batch_preparer(cfg, td, to_input, mixup, accelerator.device)
    return TrainRun(accelerator=accelerator, cfg=cfg, native_bf16=native_bf16, model=model, pcfg=pcfg, td=td,
                    to_input=to_input, optimizer=optimizer, scheduler=scheduler, lr=lr, eval_dl=eval_dl, ema=ema,
                    criterion=criterion, prepare_batch=prepare_batch)


def resume_progress(cfg: TrainConfig, accelerator: Any) -> tuple[TrainProgress, Path | None]:
    """Where a run starts: from scratch, or where the checkpoint ``cfg.resume`` names left off.

    Returns:
        The progress (epoch, batch in it, optimizer steps, history) and the checkpoint to load with
        ``accelerator.load_state`` once the first epoch's batch iterator exists (None: nothing to load).

    Raises:
        ValueError: if the checkpoint is incomplete or was trained with other options (:func:`load_resume_state`).
    """
    output_dir = Path(cfg.output_dir)
    resume_from = resume_checkpoint(cfg, output_dir)
    if resume_from is None:
        if find_latest_checkpoint(output_dir) is not None:
            logger.warning("%s holds checkpoints of an earlier run; this run starts from scratch and replaces them "
                           "(use --resume latest to continue that run instead)", output_dir)
        return TrainProgress(), None
    state = load_resume_state(resume_from, cfg, accelerator.num_processes)
    progress = TrainProgress(epoch=state["epoch"], start_batch=state["step_in_epoch"],
                             global_step=state["global_step"], history=state.get("history", []))
    logger.info("resuming from %s: epoch %d, batch %d, step %d", resume_from.name, progress.epoch,
                progress.start_batch, progress.global_step)
    return progress, resume_from


def start_trackers(cfg: TrainConfig, accelerator: Any) -> None:
    """Start Accelerate's trackers (``cfg.report_to``) with the run's scalar options; nothing without one."""
    if cfg.report_to:
        accelerator.init_trackers(Path(cfg.output_dir).name, config={
            k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))})


def train_epoch(run: TrainRun, progress: TrainProgress, resume_from: Path | None) -> tuple[torch.Tensor, int, float]:
    """Train one epoch (from ``progress.start_batch``): the batches' views, one optimizer step each
    (:func:`train_step`), the scheduler, the weight average, mid-epoch checkpoints and ``--max-steps``.

    ``resume_from`` (the checkpoint :func:`resume_progress` found) is loaded once the epoch's batch iterator exists,
    so that the RNG states are exactly the saved ones.

    Returns:
        The sum of the step losses, the batch the epoch ended at and the epoch's time in seconds.
    """
    from tqdm.auto import tqdm

    cfg, td, accelerator, model = run.cfg, run.td, run.accelerator, run.model
    epoch, first_batch = progress.epoch, progress.start_batch
    td.set_epoch(epoch, first_batch)
    model.train()
    batches = td.batches(epoch, first_batch, with_indices=True)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))  # after the iterator exists: RNG states exactly as saved
    loss_sum, step_in_epoch, epoch_start = torch.zeros((), device=accelerator.device), first_batch, time.time()
    bar = tqdm(total=td.steps_per_epoch, initial=first_batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=None if accelerator.is_local_main_process else True,  # None: on terminals only
               leave=False)
    for batch in batches:  # (x, y), or (x, y, dataset indices) on the in-memory path
        x, y = batch[0], batch[1]
        progress.samples_seen += x.shape[0] // td.loader_views  # source images, whatever the number of views
        x, y = run.prepare_batch(x, y, progress.global_step, epoch=epoch, indices=batch[2] if len(batch) > 2 else None)
        loss = train_step(model, run.criterion, run.optimizer, accelerator, x, y, cfg.clip_grad)
        step_in_epoch += 1
        loss_sum += loss.detach()
        bar.update(1)
        if accelerator.sync_gradients:
            progress.global_step += 1
            run.scheduler.step_update(num_updates=progress.global_step)
            if run.ema is not None:
                run.ema.update(accelerator.unwrap_model(model), step=progress.global_step)
            if cfg.checkpoint_every and progress.global_step % cfg.checkpoint_every == 0:
                save_checkpoint(accelerator, Path(cfg.output_dir), checkpoint_state(
                    cfg, epoch, step_in_epoch, progress.global_step, accelerator.num_processes, progress.history,
                    False), cfg.keep_checkpoints)
            if cfg.max_steps and progress.global_step >= cfg.max_steps:
                progress.stop = True
                break
    bar.close()
    return loss_sum, step_in_epoch, time.time() - epoch_start


def end_epoch(run: TrainRun, progress: TrainProgress, loss_sum: torch.Tensor, step_in_epoch: int,
              epoch_time: float) -> dict[str, Any]:
    """Close the epoch :func:`train_epoch` trained: its record (with the evaluation every ``eval_every`` epochs, the
    last and a stopped one), the log line and trackers, the end-of-epoch checkpoint; then move ``progress`` on.

    Returns:
        The epoch's record (also appended to ``progress.history``).
    """
    cfg, accelerator = run.cfg, run.accelerator
    epoch, first_batch, world = progress.epoch, progress.start_batch, accelerator.num_processes
    progress.train_time += epoch_time
    record = epoch_record(accelerator, epoch, loss_sum, step_in_epoch - first_batch, run.optimizer,
                          (step_in_epoch - first_batch) * cfg.batch_size * world, epoch_time, first_batch)
    if run.eval_dl is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs or progress.stop):
        record.update(evaluate(run.model, run.eval_dl, accelerator, run.to_input, tta_flip=cfg.tta_flip, ema=run.ema))
    progress.history.append(record)
    if accelerator.is_main_process:
        logger.info("epoch %d/%d: %s", epoch + 1, cfg.epochs,
                    ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
    if cfg.report_to:
        accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
    if not progress.stop:
        save_checkpoint(accelerator, Path(cfg.output_dir), checkpoint_state(
            cfg, epoch, step_in_epoch, progress.global_step, world, progress.history, True), cfg.keep_checkpoints)
    progress.epoch, progress.start_batch = epoch + 1, 0
    return record


def finish_run(run: TrainRun, progress: TrainProgress, start_time: float) -> dict[str, Any]:
    """The run's outputs (:func:`build_results`, :func:`save_outputs`: ``results.json``, the model and its card, the
    push) and the trackers' end; returns the results."""
    accelerator, ema = run.accelerator, run.ema
    final_model = ema.module if ema is not None else accelerator.unwrap_model(run.model)
    results = build_results(run.cfg, run.td, accelerator, accelerator.unwrap_model(run.model), run.pcfg, progress,
                            lr=run.lr, ema=ema is not None, native_bf16=run.native_bf16, start_time=start_time)
    results = save_outputs(results, final_model, run.pcfg, run.td.data, accelerator, run.cfg)
    if run.cfg.report_to:
        accelerator.end_training()
    return results


# ------------------------------------------------------------------------------------------------------- setup
def create_accelerator(cfg: TrainConfig) -> tuple[Any, TrainConfig, bool | None]:
    """The run's ``Accelerator``, with threads, determinism, logging and the seed set.

    Without a GPU (or other accelerator) it runs on the CPU, in bf16 autocast where the CPU computes bf16 natively
    (unless ``cfg.mixed_precision`` says otherwise).

    Returns:
        The accelerator, ``cfg`` with ``mixed_precision`` settled, and whether the CPU has native bf16 (None on an
        accelerator).
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    output_dir = Path(cfg.output_dir)
    on_accelerator = has_accelerator()
    native_bf16 = None if on_accelerator else cpu_has_native_bf16()
    if cfg.mixed_precision is None and not on_accelerator:  # bf16 autocast where the CPU computes it natively
        cfg = dataclasses.replace(cfg, mixed_precision="bf16" if native_bf16 else "no")
    _allow_precision_change(cfg.mixed_precision)
    accelerator = Accelerator(
        cpu=not on_accelerator, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=cfg.report_to, project_config=ProjectConfiguration(project_dir=str(output_dir),
                                                                    logging_dir=str(output_dir / "logs")))
    if accelerator.device.type == "cpu":
        # accelerate launch pins 1 thread per process
        torch.set_num_threads(cfg.num_threads or max(1, usable_cpus() // accelerator.num_processes))
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file otherwise
    set_seed(cfg.seed)
    return accelerator, cfg, native_bf16


def _allow_precision_change(mixed_precision: str | None) -> None:
    """Let a later ``train()`` call in the same process use another precision than an earlier one.

    Accelerate keeps one process-wide state and refuses a second ``Accelerator`` with another mixed precision;
    between runs (benchmarks, tests) that state is cleared, the distributed setup (``PartialState``) is kept.
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision or "no"):
        AcceleratorState._reset_state(reset_partial_state=False)


def create_train_model(cfg: TrainConfig, data: ImageData, input_size: int | None) -> tuple[nn.Module, dict[str, Any]]:
    """Create the model and the ``pretrained_cfg`` (input size, normalization) the run trains and saves with."""
    num_classes = data.num_classes
    if cfg.model.startswith("transformers:"):
        from timm_dynmix.models.transformers import create_transformers_model

        return create_transformers_model(cfg.model.split(":", 1)[1], num_classes, data.label_names,
                                         input_size or data.input_size)
    import timm

    import timm_dynmix.models.cifar  # noqa: F401 - registers the CIFAR architectures

    if not timm.is_model(cfg.model.split(".")[0]) and not cfg.model.startswith(("hf-hub:", "local-dir:")):
        close = timm.list_models(f"*{cfg.model.split('.')[0][:6]}*")[:8]
        raise ValueError(f"unknown model {cfg.model!r}: not a timm model name"
                         + (f" (close: {', '.join(close)})" if close else "") + "; CIFAR models: wrn40_2, "
                         "resnext29_32x4d, densenet_bc_100_12, allconv, resnet8_cifar, resnet20_cifar; or "
                         "transformers:<repo id or path>")
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    model = timm.create_model(cfg.model, pretrained=cfg.pretrained, **kwargs)
    pcfg: dict[str, Any] = dict(cast(Any, model).pretrained_cfg)
    size = input_size or data.input_size or pcfg.get("input_size", (3, 224, 224))[-1]
    pcfg.update(input_size=(3, size, size), num_classes=num_classes)
    if size <= 64:
        pcfg.update(crop_pct=1.0, test_input_size=(3, size, size), fixed_input_size=False)
    return model, pcfg


class ModelInput:
    """Batches to the model's input: uint8 batches (in-memory path) normalized on the device; every 4-D batch in
    the model's memory format (channels-last or contiguous).

    Args:
        mean: Normalization mean (the model's ``pretrained_cfg``).
        std: Normalization std.
        channels_last: Use the channels-last memory format.
        device: Where the normalization runs.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool | None,
                 device: torch.device):
        self.normalize = Uint8Normalize(mean, std).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = self.normalize(x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x


def init_model(model: nn.Module, cfg: TrainConfig, td: TrainData, to_input: ModelInput) -> nn.Module:
    """Data-dependent initialisation (:func:`resolve_stem`) and the memory format, before ``accelerator.prepare``.

    With ``stem == "whitened"`` a model with ``init_whitening`` (FastNet-CIFAR) gets its frozen stem from up to 5,000
    seeded training images, taken by :meth:`TrainData.training_images` the same way on every data path, so the
    network a recipe trains does not depend on where the views are made.
    """
    if resolve_stem(model, cfg) == "whitened":
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, split="whitening"))
        pick = torch.randperm(len(td.decoded_train), generator=gen)[:_WHITENING_SAMPLES]
        cast(Any, model).init_whitening(to_input.normalize(td.training_images(pick)))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def resolve_stem(model: nn.Module, cfg: TrainConfig) -> str:
    """The first-layer initialisation a run uses: ``learned``, ``whitened`` or ``pretrained``.

    ``--stem`` defaults to ``learned`` (measured: the frozen whitened stem of the fast recipe costs 6.5 points of
    CIFAR-10-C error at the same clean error; BENCHMARKS.md).

    Raises:
        ValueError: ``--stem whitened`` with a model that has no data-dependent stem, or with ``--pretrained``.
    """
    if cfg.pretrained:
        if cfg.stem == "whitened":
            raise ValueError("--stem whitened re-initialises the first layer; it cannot be combined with --pretrained")
        return "pretrained"
    if cfg.stem == "whitened" and not hasattr(model, "init_whitening"):
        raise ValueError(f"--stem whitened needs a model with a data-dependent stem (fastnet_cifar, fastnet_cifar_s); "
                         f"{cfg.model} has none (use --stem learned)")
    return cfg.stem or "learned"


def create_optimizer(cfg: TrainConfig, model: nn.Module, steps_per_epoch: int, world: int) -> tuple[Any, Any, float]:
    """timm's optimizer and per-update scheduler for ``cfg``.

    Returns:
        The optimizer, the scheduler (stepped with ``step_update`` after every optimizer step) and the learning rate
        (scaled by the global batch over ``lr_base_batch_size`` when that is set).
    """
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    lr = cfg.lr if cfg.lr_base_batch_size is None else cfg.lr * cfg.batch_size * world / cfg.lr_base_batch_size
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                                    filter_bias_and_bn=cfg.filter_bias_and_bn)
    updates_per_epoch = max(1, steps_per_epoch // cfg.grad_accum_steps)
    scheduler, _ = create_scheduler_v2(optimizer, sched=cfg.sched, num_epochs=cfg.epochs, min_lr=cfg.min_lr,
                                       warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr,
                                       step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    return optimizer, scheduler, lr


def create_ema(cfg: TrainConfig, model: nn.Module, accelerator: Any) -> Any:
    """timm's ``ModelEmaV3`` of the prepared ``model`` (saved and resumed with it), or None without ``model_ema``."""
    if not cfg.model_ema:
        return None
    from timm.utils import ModelEmaV3

    ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup,
                     device=accelerator.device)
    ema.module.eval()
    accelerator.register_for_checkpointing(ema)  # saved and resumed with the model
    return ema


def create_criterion(cfg: TrainConfig, num_splits: int, num_classes: int) -> tuple[nn.Module, Any]:
    """The loss, and timm's ``Mixup`` for ``--aug mixup / cutmix`` (else None).

    JSD (:class:`~timm_dynmix.loss.JsdLoss`) when the batches hold ``num_splits > 1`` views; soft-target cross
    entropy after Mixup / CutMix; cross entropy otherwise (all with ``cfg.smoothing``).
    """
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    if cfg.aug_name in ("mixup", "cutmix"):
        mixup = Mixup(mixup_alpha=cfg.mixup_alpha if cfg.aug_name == "mixup" else 0.0,
                      cutmix_alpha=cfg.cutmix_alpha if cfg.aug_name == "cutmix" else 0.0,
                      label_smoothing=cfg.smoothing, num_classes=num_classes)
        return SoftTargetCrossEntropy(), mixup
    if num_splits > 1:
        return JsdLoss(num_splits=num_splits, weight=cfg.jsd_weight, smoothing=cfg.smoothing), None
    return nn.CrossEntropyLoss(label_smoothing=cfg.smoothing), None


def batch_preparer(cfg: TrainConfig, td: TrainData, to_input: ModelInput, mixup: Any,
                   device: torch.device) -> Callable[..., Batch]:
    """``prepare(x, y, global_step, *, epoch=0, indices=None) -> (x, y)``: a loader batch on the device, as the
    model and loss take it.

    With ``aug_device == "step"`` the batched augmentation (:data:`~timm_dynmix.train.config.STEP_AUGMENTATIONS`)
    makes the views here: uint8 crops in, normalized split-major ``[clean, mix_1, ...]`` out with JSD (see
    :func:`_device_augmentation` for the seeding). Then normalization / memory format (:class:`ModelInput`) and
    Mixup / CutMix.
    """
    device_aug = create_step_augmentation(cfg, td, device)

    def prepare(x: torch.Tensor, y: torch.Tensor, step: int, *, epoch: int = 0,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device_aug is not None:
            x = device_aug(x, step, epoch, indices)
        x = to_input(x)
        if mixup is not None:
            x, y = mixup(x, y)
        return x, y

    return prepare


def create_step_augmentation(cfg: TrainConfig, td: TrainData,
                             device: torch.device) -> Callable[..., torch.Tensor] | None:
    """The batched augmentation of the training step, or None when the loader makes the views (``aug_device``).

    ``augment(x, global_step, epoch, indices)``: a uint8 batch of ``B`` crops in, normalized views out: with JSD
    ``num_splits * B`` rows, split-major ``[clean, mix_1, ..., mix_N]``; without, ``B`` augmented images (see
    :func:`_device_augmentation` for the seeding).
    """
    if cfg.aug_device not in ("step", "model"):
        return None
    return _device_augmentation(cfg, td.mean, td.std, device, td.rank)


def _step_augmentation_class(family: str) -> type:
    """The batched class of a :data:`~timm_dynmix.train.config.STEP_AUGMENTATIONS` family (imported on use)."""
    import importlib

    from timm_dynmix.augment.spec import STEP_AUGMENTATIONS

    module, name = STEP_AUGMENTATIONS[family].split(":")
    return getattr(importlib.import_module(module), name)


def _device_augmentation(cfg: TrainConfig, mean: Sequence[float], std: Sequence[float], device: torch.device,
                         rank: int) -> Callable[[torch.Tensor, int, int, torch.Tensor | None], torch.Tensor]:
    """The batched augmentation in the training step: ``run(x uint8, global step, epoch, indices) -> views``.

    Normalized views out: split-major ``[clean, mix_1, ..., mix_N]`` with JSD, one augmented view without.

    Seeding. DynMix: one generator per step, seeded from ``(seed, global step, rank)`` (ranks draw different views,
    a resumed run repeats an uninterrupted one). AugMix (and the other per-sample seeded families): view k of
    dataset image i from ``(seed, epoch, i, k)`` when the batch carries its dataset indices (the in-memory path),
    so its views do not depend on the batch it falls in; else (DataLoader batches) the per-step generator.
    """
    spec = cfg.spec  # parsed once, by the config: the batched class is built from its typed params
    family = spec.step_family
    if family is None:
        raise ValueError(f"--aug {cfg.aug} has no batched version for --aug-device step")
    cls = _step_augmentation_class(family)
    num_mixes = cfg.mixes if cfg.use_jsd else 1
    if family == "dynmix":
        aug = cls(spec.params.replace(num_mixes=num_mixes)).to(device)
    else:
        aug = cls(spec.params, num_mixes=num_mixes).to(device)
    per_sample = family != "dynmix"
    norm = Uint8Normalize(mean, std).to(device)
    gen = torch.Generator(device=device)

    def run(x: torch.Tensor, step: int, epoch: int = 0, indices: torch.Tensor | None = None) -> torch.Tensor:
        if per_sample and indices is not None:
            kw: dict[str, Any] = {"seed": cfg.seed, "epoch": epoch, "indices": indices}
        else:
            gen.manual_seed(derive_seed(cfg.seed, step, rank, split="device-aug"))
            kw = {"generator": gen}
        if cfg.use_jsd:
            return aug.views(x, mean=mean, std=std, **kw)
        return norm(aug(x, **kw)[0])

    return run


def train_step(model: nn.Module, criterion: nn.Module, optimizer: Any, accelerator: Any, x: torch.Tensor,
               y: torch.Tensor, clip_grad: float | None = None) -> torch.Tensor:
    """One forward / backward / optimizer step under ``accelerator.accumulate`` (gradient accumulation); returns the
    loss. Gradients are clipped to ``clip_grad`` (norm) on the steps that update the weights."""
    with accelerator.accumulate(model):
        loss = criterion(model(x), y)
        accelerator.backward(loss)
        if clip_grad and accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss


def epoch_record(accelerator: Any, epoch: int, loss_sum: torch.Tensor, loss_count: int, optimizer: Any,
                 samples: int, epoch_time: float, first_batch: int = 0) -> dict[str, Any]:
    """An epoch's record: mean training loss over processes, learning rate, throughput, time.

    Args:
        accelerator: The accelerator (for the mean over processes).
        epoch: The epoch (0-based; recorded 1-based).
        loss_sum: Sum of this process's step losses.
        loss_count: Steps summed.
        optimizer: The optimizer (its current learning rate).
        samples: Images trained on in this epoch, all processes.
        epoch_time: Seconds the epoch took.
        first_batch: Batch the epoch resumed at (recorded when > 0).
    """
    mean_loss = accelerator.reduce(loss_sum / max(1, loss_count), reduction="mean").item()
    record = {"epoch": epoch + 1, "train_loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
              "samples_per_s": samples / max(epoch_time, 1e-9), "epoch_time_s": epoch_time}
    if first_batch:
        record["resumed_at_batch"] = first_batch
    return record


def evaluate(model: nn.Module, eval_dl: Any, accelerator: Any, to_input: Callable[..., Any] | None = None,
             tta_flip: bool = False, ema: Any = None) -> dict[str, float]:
    """The evaluation of an epoch: :func:`evaluate_top1` of the model, or with ``ema`` of the averaged weights (the
    run's model then) plus the raw weights' ``raw_clean_top1`` and ``raw_clean_loss``."""
    if ema is None:
        return evaluate_top1(model, eval_dl, accelerator, prepare=to_input, tta_flip=tta_flip)
    raw = evaluate_top1(model, eval_dl, accelerator, prepare=to_input)
    with accelerator.autocast():
        out = evaluate_top1(ema.module, eval_dl, accelerator, prepare=to_input, tta_flip=tta_flip)
    ema.module.eval()
    out.update(raw_clean_top1=raw["clean_top1"], raw_clean_loss=raw["clean_loss"])
    return out


def evaluate_top1(model: nn.Module, loader: Any, accelerator: Any, prepare: Callable[..., Any] | None = None,
                  tta_flip: bool = False) -> dict[str, float]:
    """Clean top-1 accuracy (percent) and loss over ``loader``, gathered across processes without duplicates.

    ``prepare`` (optional) maps each input batch to the model's input (normalization, memory format). With
    ``tta_flip`` the result also holds ``clean_top1_tta_flip``: top-1 of the mean logits of each image and its
    horizontal mirror; ``clean_top1`` and ``clean_loss`` never use test-time augmentation. The loop is
    :func:`timm_dynmix.runtime.gathered_outputs`, as in the robustness evaluation.
    """

    def forward(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        x = prepare(x) if prepare is not None else x
        out = {"logits": model(x), "label": y}
        if tta_flip:
            out["tta_logits"] = (out["logits"].float() + model(x.flip(-1)).float()) / 2
        return out

    model.eval()
    correct = total = correct_tta = 0
    loss_sum = 0.0
    for out in gathered_outputs(model, loader, accelerator, forward):
        logits, y = out["logits"], out["label"]
        if tta_flip:
            correct_tta += (out["tta_logits"].argmax(-1) == y).sum().item()
        correct += (logits.argmax(-1) == y).sum().item()
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
        total += y.numel()
    model.train()
    out = {"clean_top1": 100.0 * correct / max(1, total), "clean_loss": loss_sum / max(1, total),
           "eval_samples": total}
    if tta_flip:
        out["clean_top1_tta_flip"] = 100.0 * correct_tta / max(1, total)
    return out


# ------------------------------------------------------------------------------------------------------ outputs
def write_run_config(cfg: TrainConfig, accelerator: Any) -> None:
    """``output_dir/config.yaml``: the resolved config (what ran, not "auto"), written by the main process."""
    if accelerator.is_main_process:
        output_dir = Path(cfg.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())


def build_results(cfg: TrainConfig, td: TrainData, accelerator: Any, model: nn.Module, pcfg: dict[str, Any],
                  progress: TrainProgress, *, lr: float, ema: bool, native_bf16: bool | None,
                  start_time: float) -> dict[str, Any]:
    """The run's record (``results.json``): data, augmentation, optimization, speed options, metrics, history.

    Every process calls it (the fallback count, and with ``cfg.diagnostics`` :func:`cross_rank_diagnostics`, are
    gathered); ``process_index`` is added.
    """
    data, world = td.data, accelerator.num_processes
    jsd = td.num_splits > 1
    results = {
        "model": cfg.model, "architecture": getattr(model, "pretrained_cfg", {}).get("architecture", cfg.model),
        "dataset": {"name": cfg.dataset, "source": data.source, "repo": data.extra.get("repo"),
                    "path": data.extra.get("path"), "provenance": data.provenance,
                    "train_split": data.extra.get("train_split"), "eval_split": data.extra.get("eval_split"),
                    "num_classes": data.num_classes, "label_names": data.label_names,
                    "train_samples": len(td.decoded_train) if not data.streaming else None,
                    "fallback_images": td.fallback_images(accelerator)},
        "aug": cfg.aug_string or cfg.aug_name, "aug_name": cfg.aug_name, "jsd": jsd,
        "jsd_weight": cfg.jsd_weight if jsd else None, "num_mixes": cfg.mixes if jsd else None,
        "aug_device": cfg.aug_device, "data_in_memory": td.memory is not None, "data_path": td.data_path,
        "stem": resolve_stem(model, cfg),
        "epochs": cfg.epochs, "steps": progress.global_step, "batch_size": cfg.batch_size,
        "global_batch_size": cfg.batch_size * world * cfg.grad_accum_steps, "lr": lr, "optimizer": cfg.opt,
        "scheduler": cfg.sched, "weight_decay": cfg.weight_decay, "seed": cfg.seed, "world_size": world,
        "model_ema_decay": cfg.model_ema_decay if ema else None,
        "mixed_precision": accelerator.mixed_precision, "channels_last": bool(cfg.channels_last),
        "cpu_native_bf16": native_bf16, "device": accelerator.device.type,
        "input_size": list(pcfg["input_size"]), "mean": list(td.mean), "std": list(td.std),
        "metrics": progress.metrics, "history": progress.history, **run_status(cfg, td, progress),
        "train_samples_per_s": progress.samples_seen * world / max(progress.train_time, 1e-9),
        **(cross_rank_diagnostics(accelerator, model, td) if cfg.diagnostics else {}),
        "elapsed_s": time.time() - start_time, "versions": versions(), "config": cfg.to_dict(),
        "resolved": resolved_config(cfg, td, model, stem=resolve_stem(model, cfg), lr=lr,
                                    mixed_precision=accelerator.mixed_precision, world_size=world,
                                    device=accelerator.device.type, ema=ema),
    }
    return {**results, "process_index": accelerator.process_index}


def run_status(cfg: TrainConfig, td: TrainData, progress: TrainProgress) -> dict[str, Any]:
    """Whether the run did all it planned: ``completed``, ``epochs_completed`` (fractional: optimizer steps over steps
    per epoch), ``steps_completed``, ``steps_planned`` and, when it stopped early, ``stopped_early_reason``.

    A run stopped by ``--max-steps`` before its last planned step is not complete: its card and ``push`` say so.
    """
    updates_per_epoch = max(1, td.steps_per_epoch // cfg.grad_accum_steps)
    planned = cfg.epochs * updates_per_epoch
    completed = not progress.stop or progress.global_step >= planned
    status: dict[str, Any] = {"completed": completed, "epochs_completed": cfg.epochs if completed else
              round(progress.global_step / updates_per_epoch, 4), "steps_completed": progress.global_step,
              "steps_planned": planned}
    if not completed:
        status["stopped_early_reason"] = f"--max-steps {cfg.max_steps}"
    return status


def done_message(results: dict[str, Any]) -> str:
    """The line a finished run prints: eval top-1 (or why there is none), how far it got, where the outputs are."""
    from timm_dynmix.hub.summary import stopped_early

    top1 = results["metrics"].get("clean_top1")
    if top1 is not None:
        head = f"done: eval top-1 {top1:.2f}%"
    elif (results.get("dataset") or {}).get("eval_split") is None:
        head = "done: no evaluation (the dataset has no eval split; name one with --eval-split)"
    else:
        head = "done: no eval top-1 recorded"
    how_far = stopped_early(results) or f"after {results['epochs']} epochs"
    return (f"{head}, {how_far} ({results['train_samples_per_s']:.0f} samples/s); outputs in "
            f"{results['config']['output_dir']}")


def cross_rank_diagnostics(accelerator: Any, model: nn.Module, td: TrainData) -> dict[str, Any]:
    """Checks of data-parallel training (``--diagnostics``), gathered from every process.

    Returns:
        ``rank_weight_checksums``: each rank's sum of its weights (equal when the ranks stayed in sync);
        ``shards_disjoint``: whether the ranks' sampler shards of epoch 0 share no index (None when streamed).
    """
    checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in model.parameters())],
                            device=accelerator.device, dtype=torch.float64)
    checksums = accelerator.gather(checksum).tolist()
    shards_disjoint = None
    if td.sampler is not None:
        idx = torch.tensor(td.sampler.indices(0), device=accelerator.device)
        everything = accelerator.gather(idx).tolist()
        shards_disjoint = len(set(everything)) == len(everything)
    return {"rank_weight_checksums": checksums, "shards_disjoint": shards_disjoint}


def save_outputs(results: dict[str, Any], model: nn.Module, pcfg: dict[str, Any], data: ImageData, accelerator: Any,
                 cfg: TrainConfig) -> dict[str, Any]:
    """Write ``results.json`` and the final model (timm's hub format and card, or transformers' format), push it
    when ``cfg.push_to_hub`` says so (main process); every process then waits. Returns ``results`` (with
    ``pushed`` after a push)."""
    output_dir = Path(cfg.output_dir)
    results_file = {k: v for k, v in results.items() if k != "process_index"}
    if accelerator.is_main_process:
        atomic_write_json(output_dir / "results.json", results_file)
        _save_final_model(model, pcfg, output_dir, data, results_file)
        logger.info("saved the model, its card and results.json to %s", output_dir)
        if cfg.push_to_hub:
            results = {**results, "pushed": _push(output_dir, cfg.push_to_hub)}
    accelerator.wait_for_everyone()
    return results


def _save_final_model(model: nn.Module, pcfg: dict[str, Any], output_dir: Path, data: ImageData,
                      results: dict[str, Any]) -> None:
    """The final model: timm's hub format for timm models, transformers' format for wrapped transformers models."""
    from timm_dynmix.models.transformers import TransformersClassifier

    if isinstance(model, TransformersClassifier):
        cast(Any, model.hf_model).save_pretrained(output_dir / "model")
        return
    from timm_dynmix.hub import save_pretrained

    cast(Any, model).pretrained_cfg = {**pcfg, "architecture": pcfg.get("architecture", results["model"])}
    save_pretrained(model, output_dir, label_names=data.label_names, results=results)


def _push(output_dir: Path, repo_id: str) -> bool:
    """Push the saved model folder; a failure is logged, never raised: the local outputs stay as they are."""
    from timm_dynmix.hub import HubError, push_to_hub

    try:
        url = push_to_hub(output_dir, repo_id)
    except HubError as e:
        logger.error("push to the Hub failed; every local file is kept in %s. %s", output_dir, e)
        logger.error("retry with: timm-dynmix push %s %s", output_dir, repo_id)
        return False
    logger.info("pushed to %s", url)
    return True
