"""A run's resolved configuration: every option after the automatic choices, as ``results.json`` records it.

:func:`resolved_config` starts from the settled :class:`~timm_dynmix.train.config.TrainConfig` (``prepare_data`` has
filled in the op set, channels-last, the data path and the augmentation device) and adds what the run derived from
it: the data path actually used, the first-layer initialisation, the precision, the views the loss sees, the
effective learning rate and batch, the DataLoader workers, the number of trainable parameters. Two runs whose
resolved configurations are equal outside the augmentation/loss fields trained the same network the same way;
:func:`timm_dynmix.fairness.check_comparable` is the check.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from timm_dynmix.train.config import TrainConfig
from timm_dynmix.train.data import TrainData

__all__ = ["resolved_config"]


def resolved_config(cfg: TrainConfig, td: TrainData, model: nn.Module, *, stem: str, lr: float,
                    mixed_precision: str, world_size: int, device: str, ema: bool) -> dict[str, Any]:
    """The run's configuration after every automatic choice (``results.json["resolved"]``, the model card).

    Args:
        cfg: The settled config (after ``prepare_data``).
        td: The run's data (data path, views, crop padding, sizes).
        model: The trained model (unwrapped): its trainable parameter count is recorded.
        stem: The resolved first-layer initialisation (:func:`~timm_dynmix.train.loop.resolve_stem`).
        lr: The effective learning rate (after scaling by the global batch).
        mixed_precision: What Accelerate ran (``no``, ``bf16``, ``fp16``).
        world_size: Processes.
        device: ``cpu``, ``cuda``, ...
        ema: Whether the weights are averaged (and the average is the run's model).
    """
    jsd = td.num_splits > 1
    out = cfg.to_dict()
    out.update({
        "aug_name": cfg.aug_name, "aug_string": cfg.aug_string or cfg.aug_name,
        "jsd": jsd, "jsd_weight": cfg.jsd_weight if jsd else None,
        "num_mixes": cfg.mixes if cfg.has_views else None, "views": td.num_splits,
        "data_path": td.data_path, "data_in_memory": td.memory is not None, "stem": stem,
        "mixed_precision": mixed_precision, "channels_last": bool(cfg.channels_last),
        "model_ema": ema, "model_ema_decay": cfg.model_ema_decay if ema else None,
        "model_ema_warmup": cfg.model_ema_warmup if ema else None,
        "workers": td.train_dl.num_workers if td.train_dl is not None else 0,
        "effective_lr": lr, "world_size": world_size, "device": device,
        "global_batch_size": cfg.batch_size * world_size * cfg.grad_accum_steps,
        "input_size": td.size, "crop_padding": td.padding, "mean": list(td.mean), "std": list(td.std),
        "train_samples": len(td.decoded_train) if td.sampler is not None else None,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params": sum(p.numel() for p in model.parameters()),
    })
    return out
