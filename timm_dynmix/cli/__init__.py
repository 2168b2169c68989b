"""The ``timm-dynmix`` command line.

Each subcommand is a module of this package (``timm_dynmix.cli.<name>``) that defines ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the command being run is imported, so ``timm-dynmix --help`` loads
neither torch nor timm.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from timm_dynmix.version import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("timm_dynmix.cli.train",
              "train a classifier with DynMix + JSD or a timm baseline (as examples/train.py)"),
    "preview": ("timm_dynmix.cli.preview", "render a grid of DynMix views of an image, to check a config"),
    "timm-train": ("timm_dynmix.cli.timm_train", "run timm's train.py (or a copy) with --aug dynmix and our JSD loss"),
    "card": ("timm_dynmix.cli.card", "(re)write the model card README.md of a saved model folder"),
    "push": ("timm_dynmix.cli.push", "upload a saved model folder to the Hugging Face Hub in one commit"),
    "make-c": ("timm_dynmix.cli.make_c", "generate a -C benchmark (15 + 4 corruptions x 5 severities) from a dataset"),
    "eval": ("timm_dynmix.cli.eval", "evaluate a model on clean, -C, -3DCC or -P benchmarks; write a report"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; the arguments of ``command`` (if given) are added from its module."""
    parser = argparse.ArgumentParser(prog="timm-dynmix",
                                     description="Dynamic Mixup (DynMix) for timm and Hugging Face.")
    parser.add_argument("--version", action="version", version=f"timm-dynmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``timm-dynmix`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("TIMM_DYNMIX_DEBUG"):
            raise
        print(f"timm-dynmix {args.command}: error: {e}", file=sys.stderr)
        return 2
