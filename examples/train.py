"""Train a robust image classifier with DynMix + JSD (or a timm baseline) under Accelerate: the loop, step by step.

    accelerate launch examples/train.py                                   # embedded digits data, ~1 minute on CPU
    accelerate launch examples/train.py -c examples/configs/cifar10_wrn40_2.yaml --data-dir CIFAR10_COPY
    accelerate launch examples/train.py --dataset uoft-cs/cifar10 --model wrn40_2 --aug dynmix --epochs 100

In the style of Accelerate's ``cv_example.py``: the loop is written out here, each piece is a function of
``timm_dynmix.train`` (the same functions ``timm-dynmix train`` is made of, so the two train the same model from the
same options and seed). Every option is a field of ``timm_dynmix.train.TrainConfig``; flags override the YAML recipe
given with ``-c``. Resuming, mid-epoch checkpoints, ``--max-steps`` and trackers (``--report-to``) are in
``timm-dynmix train``, which takes the same options and has the full loop.
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
    TrainProgress,
    batch_preparer,
    build_results,
    create_accelerator,
    create_criterion,
    create_ema,
    create_optimizer,
    create_train_model,
    done_message,
    epoch_record,
    evaluate,
    init_model,
    save_outputs,
    train_step,
    write_run_config,
)

# options of the full loop only (timm-dynmix train): refused here rather than ignored
FULL_LOOP_ONLY = {"resume": None, "checkpoint_every": None, "max_steps": None, "report_to": None}


def training_function(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the results (also in ``output_dir/results.json``, with the model and card)."""
    cfg.validate()
    start_time = time.time()
    # 1. One Accelerator: CPU or GPU, one or many processes, mixed precision (bf16 on CPUs that compute it
    #    natively), then threads and the seed.
    accelerator, cfg, native_bf16 = create_accelerator(cfg)
    world = accelerator.num_processes

    # 2. Data and model. With DynMix + JSD each image gives views [clean, mix_1, ..., mix_N] (split-major in a batch);
    #    the sampler gives each process a disjoint shard of every epoch's seeded shuffle. Small images are decoded
    #    once into memory and cropped, flipped and mixed in the step (on the device).
    data = load_image_data(cfg.dataset, data_dir=cfg.data_dir, image_column=cfg.image_column,
                           label_column=cfg.label_column, train_split=cfg.train_split, eval_split=cfg.eval_split,
                           streaming=cfg.streaming)
    model, pcfg = create_train_model(cfg, data, cfg.input_size)  # timm (our CIFAR nets included) or transformers
    cfg, td = prepare_data(cfg, data, pcfg, accelerator)  # settles the "auto" options, recorded as run
    to_input = ModelInput(td.mean, td.std, cfg.channels_last, accelerator.device)
    model = init_model(model, cfg, td, to_input)

    # 3. timm's optimizer and per-step scheduler; Accelerate wraps the model, the optimizer and the eval loader.
    optimizer, scheduler, lr = create_optimizer(cfg, model, td.steps_per_epoch, world)
    model, optimizer = accelerator.prepare(model, optimizer)
    eval_dl = accelerator.prepare(td.eval_dl) if td.eval_dl is not None else None
    accelerator.register_for_checkpointing(scheduler)  # saved with the model in every checkpoint
    ema = create_ema(cfg, model, accelerator)  # --model-ema: a moving average of the weights, evaluated and saved

    # 4. The loss: JSD (cross entropy on the clean split + weight x Jensen-Shannon of all splits) with views, else
    #    cross entropy (soft targets after Mixup / CutMix). prepare_batch moves a batch to the device and makes the
    #    model's input (DynMix views, normalization, Mixup).
    criterion, mixup = create_criterion(cfg, td.num_splits, data.num_classes)
    prepare_batch = batch_preparer(cfg, td, to_input, mixup, accelerator.device)
    write_run_config(cfg, accelerator)  # output_dir/config.yaml: what runs

    # 5. The loop.
    progress, output_dir = TrainProgress(), Path(cfg.output_dir)
    for epoch in range(cfg.epochs):
        td.set_epoch(epoch)  # a new shuffle and new augmentation draws, the same on a rerun
        model.train()
        loss_sum, steps, epoch_start = torch.zeros((), device=accelerator.device), 0, time.time()
        for x, y in td.batches(epoch):
            progress.samples_seen += x.shape[0] // td.loader_views  # source images, whatever the number of views
            x, y = prepare_batch(x, y, progress.global_step)
            loss = train_step(model, criterion, optimizer, accelerator, x, y, cfg.clip_grad)
            loss_sum += loss.detach()
            steps += 1
            if accelerator.sync_gradients:  # an optimizer step was taken (see --grad-accum-steps)
                progress.global_step += 1
                scheduler.step_update(num_updates=progress.global_step)
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model), step=progress.global_step)
        epoch_time = time.time() - epoch_start
        progress.train_time += epoch_time
        record = epoch_record(accelerator, epoch, loss_sum, steps, optimizer, steps * cfg.batch_size * world,
                              epoch_time)
        if eval_dl is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            record.update(evaluate(model, eval_dl, accelerator, to_input, tta_flip=cfg.tta_flip, ema=ema))
        progress.history.append(record)
        progress.epoch = epoch + 1
        accelerator.print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        # a checkpoint per epoch (model, optimizer, scheduler, RNG states; the last --keep-checkpoints are kept),
        # from which `timm-dynmix train --resume latest` continues
        save_checkpoint(accelerator, output_dir, checkpoint_state(cfg, epoch, steps, progress.global_step, world,
                                                                  progress.history, True), cfg.keep_checkpoints)

    # 6. Outputs: results.json, the model in timm's Hub format with its model card (pushed with --push-to-hub).
    final_model = ema.module if ema is not None else accelerator.unwrap_model(model)
    results = build_results(cfg, td, accelerator, accelerator.unwrap_model(model), pcfg, progress, lr=lr,
                            ema=ema is not None, native_bf16=native_bf16, start_time=start_time)
    return save_outputs(results, final_model, pcfg, data, accelerator, cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        config = config_from_args(parser.parse_args())  # defaults <- YAML recipe <- flags, validated up front
        full_loop = [k for k, off in FULL_LOOP_ONLY.items() if getattr(config, k) != off]
        if full_loop:
            raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in full_loop)}: not in this example's "
                             f"loop; run `timm-dynmix train` with the same options")
        results = training_function(config)
    except (ValueError, FileNotFoundError) as e:  # bad options or data: one clear line, no traceback
        sys.exit(f"error: {e}")
    if results["process_index"] != 0:
        return
    print(done_message(results))


if __name__ == "__main__":
    main()
