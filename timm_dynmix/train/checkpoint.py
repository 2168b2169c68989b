"""Checkpoints of a training run: atomic saves that keep the last K, the newest complete one, and resume checks.

A checkpoint is ``output_dir/checkpoints/step_<global step>``: Accelerate's ``save_state`` (model, optimizer,
scheduler, EMA, RNG states) plus ``trainer_state.json`` (epoch, position in it, history, config), written last, so
that a folder without it is incomplete. A save goes to ``.tmp-step_N`` first and is renamed into place.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timm_dynmix.fileio import apply_umask, atomic_write_json, fsync_dir, read_json
from timm_dynmix.train.config import TrainConfig

__all__ = ["CHECKPOINT_PREFIX", "STATE_FILE", "RESUME_KEYS", "find_latest_checkpoint", "save_checkpoint",
           "checkpoint_state", "resume_checkpoint", "load_resume_state"]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"
STATE_FILE = "trainer_state.json"
# keys that must match between a checkpoint and the run that resumes it
RESUME_KEYS = ("model", "dataset", "aug", "jsd", "num_mixes", "batch_size", "seed", "input_size",
               "max_train_samples", "grad_accum_steps", "aug_device", "data_in_memory", "model_ema")


def find_latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint in ``output_dir/checkpoints`` (temporary and incomplete folders ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    complete = []
    for d in root.iterdir():
        if not d.is_dir() or not d.name.startswith(CHECKPOINT_PREFIX):
            continue
        if not (d / STATE_FILE).is_file():
            logger.warning("ignoring incomplete checkpoint %s (no %s)", d.name, STATE_FILE)
            continue
        complete.append(d)
    return max(complete, key=lambda d: int(d.name[len(CHECKPOINT_PREFIX):]), default=None)


def checkpoint_state(cfg: TrainConfig, epoch: int, step_in_epoch: int, global_step: int, world: int,
                     history: list[dict[str, Any]], epoch_complete: bool) -> dict[str, Any]:
    """What a checkpoint records beside Accelerate's state (model, optimizer, scheduler, RNG states)."""
    return {"epoch": epoch, "step_in_epoch": step_in_epoch, "epoch_complete": epoch_complete,
            "global_step": global_step, "world_size": world, "history": history, "config": cfg.to_dict()}


def save_checkpoint(accelerator: Any, output_dir: Path, state: Mapping[str, Any], keep: int) -> Path:
    """Save the full training state atomically: write to ``.tmp-step_N``, then rename to ``step_N``.

    Every process calls it (``save_state`` needs all of them); the main process writes ``trainer_state.json``,
    renames the folder and removes all but the newest ``keep`` checkpoints.
    """
    root = output_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{state['global_step']:09d}"
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, state)
        apply_umask(tmp)  # safetensors writes 0600 files
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        old = sorted((d for d in root.iterdir() if d.name.startswith(CHECKPOINT_PREFIX)), key=lambda d: d.name)
        for d in old[:-keep]:
            shutil.rmtree(d, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resume_checkpoint(cfg: TrainConfig, output_dir: Path) -> Path | None:
    """The checkpoint ``cfg.resume`` names (``latest``: the newest in ``output_dir``, None when there is none yet).

    Raises:
        ValueError: if the named folder is not a complete checkpoint.
    """
    if not cfg.resume:
        return None
    found = find_latest_checkpoint(output_dir) if cfg.resume == "latest" else Path(cfg.resume)
    if found is None:
        logger.info("--resume latest: no checkpoint in %s yet, starting from scratch", output_dir)
    elif not (found / STATE_FILE).is_file():
        raise ValueError(f"--resume {cfg.resume}: {found} is not a complete checkpoint (no {STATE_FILE})")
    return found


def load_resume_state(checkpoint: Path, cfg: TrainConfig, world: int) -> dict[str, Any]:
    """``trainer_state.json`` of ``checkpoint``, after checking that this run can continue it.

    Returns:
        The state with ``epoch`` and ``step_in_epoch`` moved to where this run starts (the next epoch when the saved
        one was complete).

    Raises:
        ValueError: if the checkpoint was trained with other :data:`RESUME_KEYS` values or another world size.
    """
    state = read_json(checkpoint / STATE_FILE, what="checkpoint state")
    saved = state.get("config", {})
    if saved.get("aug_device") == "model":  # the old name of "step"
        saved = {**saved, "aug_device": "step"}
    diffs = [k for k in RESUME_KEYS if k in saved and saved[k] != getattr(cfg, k)]
    if state.get("world_size", world) != world:
        diffs.append("world_size")
    if diffs:
        raise ValueError(f"cannot resume from {checkpoint}: it was trained with different {', '.join(diffs)} "
                         f"({', '.join(f'{k}={saved.get(k, state.get(k))!r}' for k in diffs)})")
    if state.get("epoch_complete"):
        state = {**state, "epoch": state["epoch"] + 1, "step_in_epoch": 0}
    return state
