"""``timm-dynmix timm-train PATH/TO/train.py --aug dynmix[-<config>] ...``: timm's train.py with DynMix.

See :mod:`timm_dynmix.integrations.timm_train` for what the launcher does.
"""

from __future__ import annotations

import argparse
import sys

from timm_dynmix.integrations import timm_train as launcher

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix timm-train``: the script, then everything for it, passed through."""
    parser.usage = (f"{launcher.PROG} PATH/TO/train.py --aug dynmix[-<config>]|augmix[-<config>] [--jsd-weight W] "
                    f"[train.py arguments ...]")
    parser.description = (
        "Run timm's train.py (or a copy) with DynMix: --aug dynmix[-<config>] becomes timm's --aa <config> "
        "--aug-splits <1 + n> --jsd-loss --smoothing 0 (flags you set yourself, on the command line or in the "
        "-c YAML, win; contradicting ones are refused), and timm.loss.JsdCrossEntropy becomes timm_dynmix's "
        "log-space JsdLoss. --jsd-weight W sets its weight (default: timm's alpha, 12). --aug augmix[-<config>] "
        "(the official AugMix; timm's grammar augmix-m3-w3-d-1-a1 works too) runs batched on the device instead: "
        "--aug-splits <1 + n> --jsd-loss --smoothing 0, and the training loader makes the views from uint8 crops. "
        "Every other argument goes to the script unchanged. Distributed: torchrun --nproc_per_node N -m "
        "timm_dynmix.timm_train train.py ...")
    parser.add_argument("script", metavar="PATH/TO/train.py", help="timm's train.py or your copy of it")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="...",
                        help="arguments for the script, with --aug dynmix[-<config>] (or augmix...) and --jsd-weight W")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix timm-train``.

    Problems found before the script starts raise (the CLI prints them and exits with 2); an exception inside
    the script prints its traceback and gives 1, as Python does; the script's ``sys.exit`` code passes through.
    """
    path, plan = launcher.prepare(args.script, args.script_args)
    try:
        launcher.execute(path, plan)
    except Exception:
        sys.excepthook(*sys.exc_info())  # as Python reports an uncaught exception (torch.distributed prefixes ranks)
        return 1
    return 0
