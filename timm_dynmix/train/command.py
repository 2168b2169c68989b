"""The ``timm-dynmix train`` command: train a classifier with DynMix + JSD or a timm baseline (as examples/train.py).

Every :class:`~timm_dynmix.train.config.TrainConfig` field is a ``--flag``: its type from the field's type hint,
its help text from the field's ``metadata["help"]``. The training library is imported only when the command runs.

The command lives in the training layer, so that ``from timm_dynmix.train import add_arguments, run`` needs no
import of ``timm_dynmix.cli``; :mod:`timm_dynmix.cli.train` registers it as the ``train`` subcommand.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config/-c`` and every :class:`TrainConfig` field as a ``--flag``.

    Defaults are unset (None), so that the YAML recipe and then the field defaults fill in what is not given
    (:func:`~timm_dynmix.train.config.config_from_args`). Booleans get ``--flag`` / ``--no-flag``.
    """
    from timm_dynmix.train.config import field_default, field_help, field_types

    parser.add_argument("--config", "-c", default=None, help="YAML recipe (e.g. examples/configs/*.yaml); "
                        "command-line flags override its values (default: none, the defaults below)")
    for name, kind in field_types().items():
        flag = "--mixed_precision" if name == "mixed_precision" else "--" + name.replace("_", "-")  # Accelerate's
        if kind is bool:
            parser.add_argument(flag, dest=name, default=None, action=argparse.BooleanOptionalAction,
                                help=_with_default(field_help(name), field_default(name)))
        else:
            parser.add_argument(flag, dest=name, default=None, type=kind,
                                help=_with_default(field_help(name), field_default(name)))


def _with_default(help: str | None, default: object) -> str:
    """``help`` with the field's default appended, unless the text already says what the default is."""
    help = help or ""
    if re.search(r"\bdefault[: ]", help):
        return help
    shown = "none" if default is None else ("on" if default else "off") if isinstance(default, bool) else default
    return f"{help} (default: {shown})".replace("%", "%%")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix train`` (under ``accelerate launch`` or torchrun for several processes)."""
    from timm_dynmix.train.config import config_from_args
    from timm_dynmix.train.loop import done_message, train

    options = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    results = train(config_from_args(options))
    if results["process_index"] == 0:
        print(done_message(results))
    return 0
