"""Train a robust image classifier with DynMix + JSD (or a timm baseline) under Accelerate: the loop, step by step.

    accelerate launch examples/train.py                                   # embedded digits data, ~1 minute on CPU
    accelerate launch examples/train.py -c examples/configs/cifar10_wrn40_2.yaml --data-dir CIFAR10_COPY
    accelerate launch examples/train.py --dataset uoft-cs/cifar10 --model wrn40_2 --aug dynmix --epochs 100
    accelerate launch examples/train.py --output-dir output --resume latest   # continue a stopped run exactly

In the style of Accelerate's ``cv_example.py``: one function, the loop written out (batch -> views -> forward ->
cross entropy on the clean view + weight x Jensen-Shannon of all views -> backward -> step), each building block a
function of ``timm_dynmix.train``. ``timm-dynmix train`` runs the same loop in named steps
(``timm_dynmix.train.loop.train``): from the same options and seed both train the same weights (tested). Every
option is a field of ``timm_dynmix.train.TrainConfig``; flags override the YAML recipe given with ``-c``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from timm_dynmix.cli.train import add_arguments
from timm_dynmix.data.datasets import load_image_data
from timm_dynmix.train.checkpoint import checkpoint_state, save_checkpoint
from timm_dynmix.train.config import TrainConfig, config_from_args
from timm_dynmix.train.data import prepare_data
from timm_dynmix.train.loop import (
    ModelInput,
    build_results,
    create_accelerator,
    create_criterion,
    create_ema,
    create_optimizer,
    create_step_augmentation,
    create_train_model,
    done_message,
    epoch_record,
    evaluate,
    init_model,
    resume_progress,
    save_outputs,
    start_trackers,
    write_run_config,
)


def training_function(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the results (also in ``output_dir/results.json``, with the model and card)."""
    cfg.validate()
    start_time = time.time()
    # 1. One Accelerator: CPU or GPU, one or many processes, mixed precision (bf16 on CPUs that compute it
    #    natively), then threads and the seed.
    accelerator, cfg, native_bf16 = create_accelerator(cfg)
    device, world = accelerator.device, accelerator.num_processes

    # 2. Data and model. The sampler gives each process a disjoint shard of every epoch's seeded shuffle. Small
    #    images are decoded once into memory and cropped and flipped in the step, where the views are made.
    data = load_image_data(cfg.dataset, data_dir=cfg.data_dir, image_column=cfg.image_column,
                           label_column=cfg.label_column, train_split=cfg.train_split, eval_split=cfg.eval_split,
                           streaming=cfg.streaming)
    model, pcfg = create_train_model(cfg, data, cfg.input_size)  # timm (our CIFAR nets included) or transformers
    cfg, td = prepare_data(cfg, data, pcfg, accelerator)  # settles the "auto" options, recorded as run
    to_input = ModelInput(td.mean, td.std, cfg.channels_last, device)  # uint8 -> normalized, memory format
    model = init_model(model, cfg, td, to_input)

    # 3. timm's optimizer and per-step scheduler; Accelerate wraps the model, the optimizer and the eval loader.
    optimizer, scheduler, lr = create_optimizer(cfg, model, td.steps_per_epoch, world)
    model, optimizer = accelerator.prepare(model, optimizer)
    eval_dl = accelerator.prepare(td.eval_dl) if td.eval_dl is not None else None
    accelerator.register_for_checkpointing(scheduler)  # saved with the model in every checkpoint
    ema = create_ema(cfg, model, accelerator)  # --model-ema: a moving average of the weights, evaluated and saved

    # 4. The views and the loss. With DynMix + JSD, `augment` turns a batch of B images into B x (1 + N) views,
    #    split-major [clean, mix_1, ..., mix_N], and the loss is JsdLoss: cross entropy on the clean views +
    #    weight x Jensen-Shannon divergence of all views. Without views: one augmented image each and cross entropy
    #    (soft targets after Mixup / CutMix). `augment` is None when DataLoader workers make the views.
    augment = create_step_augmentation(cfg, td, device)
    criterion, mixup = create_criterion(cfg, td.num_splits, data.num_classes)

    # 5. Where to start: from scratch, or (--resume latest / a checkpoint folder) where a checkpoint left off.
    progress, resume_from = resume_progress(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    write_run_config(cfg, accelerator)  # output_dir/config.yaml: what runs
    start_trackers(cfg, accelerator)  # --report-to

    # 6. The loop.
    while progress.epoch < cfg.epochs and not progress.stop:
        epoch, first_batch = progress.epoch, progress.start_batch
        td.set_epoch(epoch, first_batch)  # a new shuffle and new augmentation draws, the same on a rerun
        batches = td.batches(epoch, first_batch, with_indices=True)
        if resume_from is not None:  # loaded once the iterator exists: the RNG states exactly as saved
            accelerator.load_state(str(resume_from))
            resume_from = None
        model.train()
        loss_sum, step_in_epoch, epoch_start = torch.zeros((), device=device), first_batch, time.time()
        for batch in batches:  # (x, y), or (x, y, dataset indices) on the in-memory path
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            progress.samples_seen += x.shape[0] // td.loader_views  # source images, whatever the number of views
            if augment is not None:  # the views, on the device: B uint8 images -> (1 + N) x B normalized views
                x = augment(x, progress.global_step, epoch, batch[2] if len(batch) > 2 else None)
            x = to_input(x)
            if mixup is not None:
                x, y = mixup(x, y)
            with accelerator.accumulate(model):  # --grad-accum-steps
                logits = model(x)  # every view in one forward pass
                loss = criterion(logits, y)  # JSD: CE(logits[:B], y) + weight x JS(softmax of each view's logits)
                accelerator.backward(loss)
                if cfg.clip_grad and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            step_in_epoch += 1
            if accelerator.sync_gradients:  # an optimizer step was taken
                progress.global_step += 1
                scheduler.step_update(num_updates=progress.global_step)
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model), step=progress.global_step)
                if cfg.checkpoint_every and progress.global_step % cfg.checkpoint_every == 0:  # mid-epoch
                    save_checkpoint(accelerator, output_dir, checkpoint_state(
                        cfg, epoch, step_in_epoch, progress.global_step, world, progress.history, False),
                        cfg.keep_checkpoints)
                if cfg.max_steps and progress.global_step >= cfg.max_steps:
                    progress.stop = True
                    break
        # the epoch's record: mean loss over processes, learning rate, speed; the evaluation every --eval-every
        # epochs, after the last and when stopped
        epoch_time, steps = time.time() - epoch_start, step_in_epoch - first_batch
        progress.train_time += epoch_time
        record = epoch_record(accelerator, epoch, loss_sum, steps, optimizer, steps * cfg.batch_size * world,
                              epoch_time, first_batch)
        if eval_dl is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs or progress.stop):
            record.update(evaluate(model, eval_dl, accelerator, to_input, tta_flip=cfg.tta_flip, ema=ema))
        progress.history.append(record)
        accelerator.print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        if cfg.report_to:
            accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
        # a checkpoint per epoch (accelerator.save_state: model, optimizer, scheduler, EMA, RNG states; plus where
        # the run is), the last --keep-checkpoints kept: --resume latest continues from the newest
        if not progress.stop:
            save_checkpoint(accelerator, output_dir, checkpoint_state(
                cfg, epoch, step_in_epoch, progress.global_step, world, progress.history, True), cfg.keep_checkpoints)
        progress.epoch, progress.start_batch = epoch + 1, 0

    # 7. Outputs: results.json, the model in timm's Hub format with its model card (pushed with --push-to-hub).
    final_model = ema.module if ema is not None else accelerator.unwrap_model(model)
    results = build_results(cfg, td, accelerator, accelerator.unwrap_model(model), pcfg, progress, lr=lr,
                            ema=ema is not None, native_bf16=native_bf16, start_time=start_time)
    results = save_outputs(results, final_model, pcfg, data, accelerator, cfg)
    if cfg.report_to:
        accelerator.end_training()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)  # the options of `timm-dynmix train`
    try:
        results = training_function(config_from_args(parser.parse_args()))  # defaults <- YAML <- flags, validated
    except (ValueError, FileNotFoundError) as e:  # bad options or data: one clear line, no traceback
        sys.exit(f"error: {e}")
    if results["process_index"] == 0:
        print(done_message(results))


if __name__ == "__main__":
    main()
