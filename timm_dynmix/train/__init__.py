"""Training: the Accelerate loop and its pieces, configs and recipes, checkpoints, the transformers Trainer glue.

* :mod:`~timm_dynmix.train.config`: :class:`TrainConfig` (every option, with its help text), recipes;
* :mod:`~timm_dynmix.train.data`: the run's data (views, sampler, loaders or the in-memory path);
* :mod:`~timm_dynmix.train.loop`: :func:`train` and the pieces it is made of (``examples/train.py`` uses them);
* :mod:`~timm_dynmix.train.checkpoint`: atomic checkpoints, the newest complete one, resume checks;
* :mod:`~timm_dynmix.train.hf_trainer`: DynMix + JSD in ``transformers.Trainer``;
* :mod:`~timm_dynmix.train.command`: the ``timm-dynmix train`` command (its flags and runner).

The names of the former ``timm_dynmix.train`` module (``from timm_dynmix.train import TrainConfig, train``) keep
working; each loads its module on first use. The ``train`` command's flags and runner (``add_arguments``, ``run``)
are in :mod:`~timm_dynmix.train.command` (``timm_dynmix.cli.train`` names them for the command line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timm_dynmix import _lazy

# name -> the module that defines it
_EXPORTS = _lazy.exports({
    "timm_dynmix.train.config": ("TrainConfig", "AUG_CHOICES", "load_recipe", "config_from_args"),
    "timm_dynmix.train.loop": ("train", "evaluate_top1", "create_train_model"),
    "timm_dynmix.train.checkpoint": ("find_latest_checkpoint",),
    "timm_dynmix.data.sampler": ("EpochShardSampler",),
    "timm_dynmix.data.memory": ("crop_flip_batch",),
    "timm_dynmix.runtime": ("cpu_has_native_bf16",),
    "timm_dynmix.train.command": ("add_arguments", "run"),
})

__all__ = ["TrainConfig", "train", "add_arguments", "config_from_args", "load_recipe", "run", "EpochShardSampler",
           "find_latest_checkpoint", "AUG_CHOICES", "cpu_has_native_bf16", "crop_flip_batch", "evaluate_top1",
           "create_train_model"]


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS)


if TYPE_CHECKING:
    from timm_dynmix.data.memory import crop_flip_batch
    from timm_dynmix.data.sampler import EpochShardSampler
    from timm_dynmix.runtime import cpu_has_native_bf16
    from timm_dynmix.train.checkpoint import find_latest_checkpoint
    from timm_dynmix.train.command import add_arguments, run
    from timm_dynmix.train.config import AUG_CHOICES, TrainConfig, config_from_args, load_recipe
    from timm_dynmix.train.loop import create_train_model, evaluate_top1, train
