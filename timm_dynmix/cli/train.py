"""``timm-dynmix train``: train a classifier with DynMix + JSD or a timm baseline (as examples/train.py).

The arguments and the run live in :mod:`timm_dynmix.train` for now; this module imports it only when the command
is given.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix train`` (those of :func:`timm_dynmix.train.add_arguments`)."""
    from timm_dynmix.train import add_arguments as train_arguments

    train_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix train``."""
    from timm_dynmix.train import run as train_run

    return int(train_run(args) or 0)
