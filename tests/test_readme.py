"""README's code blocks, extracted and exercised: Python snippets run verbatim (offline, tiny data), shell commands
parsed by the parsers that will read them.

* Python blocks run as written, each in a fresh namespace, in one subprocess (the imports are paid once), unless
  listed in ``NOT_RUN`` with the reason; those are compiled, their imports executed and every ``timm_dynmix.<name>``
  they use resolved.
* Shell commands are not run (they train for minutes to days, or need GPUs, a Hub or data we do not have): each is
  parsed as its program would parse it and the training options are validated as ``timm-dynmix train`` validates
  them (``config_from_args``: recipe files exist, augmentation strings parse, combinations are allowed). The
  launchers' own options go through ``accelerate launch``'s and ``torchrun``'s parsers; ``timm-dynmix timm-train``
  commands through the argument rewrite it would do. The quickstart's first command, the no-argument
  ``examples/train.py`` run, is run end to end by ``tests/train/test_train.py::
  test_no_argument_run_writes_loadable_outputs``; ``pip install`` and ``pytest`` lines are not run here.
* Every block must be covered: a new block that fits none of the above fails the test until it is.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

README = ROOT / "README.md"

# Python blocks that are fragments of a larger program, or need what a test cannot have; keyed by a line they hold
NOT_RUN = {
    "from timm_dynmix.train.hf_trainer import": "a fragment of a transformers Trainer script (`TrainingArguments(...)`,"
                                                " your model and processor); tests/train/test_hf_trainer.py runs it",
    "aug = DynamicMixupBatch(": "continues the Python API snippet's training loop on a GPU (`device`, `seed`); "
                                "tests/augment/test_batched.py runs DynamicMixupBatch",
    "model = td.load_eval_model(": "needs a trained model in output/ and a benchmark folder; tests/robustness runs "
                                   "these functions",
    "timm_dynmix.save_pretrained(model, \"out/\"": "the model, names and results of a training run; tests/hub runs "
                                                  "save_pretrained",
    "hf-hub:my-org/wrn40_2.dynmix_cifar10": "loads from the Hugging Face Hub; tests/hub/test_hub.py loads from a "
                                            "loopback Hub",
}


def blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```lang block of README.md."""
    found, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            found.append((i + 1, "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return found


def _not_run(code: str) -> str | None:
    return next((why for key, why in NOT_RUN.items() if key in code), None)


RUNNER = """
import json, sys, traceback
failures = {}
for line, code in json.loads(sys.stdin.read()):
    try:
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    except BaseException:
        failures[line] = traceback.format_exc()[-3000:]
print(json.dumps(failures))
"""


def test_python_blocks_run_verbatim(tmp_path):
    run = [(line, code) for line, code in blocks("python") if _not_run(code) is None]
    assert len(run) >= 3, run  # the Python API snippet, timm's loader, the two lines for train.py
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(run), capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"README.md:{k}:\n{v}" for k, v in failures.items())


def test_python_fragments_compile_and_name_real_things():
    import importlib

    import timm_dynmix

    fragments = [(line, code) for line, code in blocks("python") if _not_run(code) is not None]
    assert len(fragments) == len(NOT_RUN), "a NOT_RUN key matches no README block: remove it"
    for line, code in fragments:
        tree = ast.parse(code, f"README.md:{line}")
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    importlib.import_module(a.name)
                    aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for a in node.names:
                    assert hasattr(module, a.name), f"README.md:{line}: {node.module} has no {a.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and aliases.get(node.value.id) == "timm_dynmix":
                assert hasattr(timm_dynmix, node.attr), f"README.md:{line}: timm_dynmix has no {node.attr}"


def test_yaml_blocks_parse():
    for line, code in blocks("yaml"):
        assert isinstance(yaml.safe_load(code), dict), f"README.md:{line}"


# ---- shell commands ------------------------------------------------------------------------------------------------
def commands() -> list[tuple[int, list[str]]]:
    """Every command of the bash blocks: continuation lines joined, comments dropped, split as the shell would,
    the brackets of ``[...]`` (optional parts, README notation) removed, ``cmd && cmd`` split."""
    found = []
    for line, code in blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", code)
        for k, row in enumerate(text.splitlines()):
            row = re.sub(r"[\[\]]", "", row.split(" #")[0] if not row.startswith("#") else "").strip()
            for part in filter(None, (p.strip() for p in row.split("&&"))):
                found.append((line + k, shlex.split(part)))
    return found


def _train_options(args: list[str]) -> None:
    """Parse examples/train.py / `timm-dynmix train` arguments and validate them as training would."""
    import argparse

    from timm_dynmix.cli.train import add_arguments
    from timm_dynmix.train.config import config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config_from_args(vars(parser.parse_args(args)))


def _check_command(argv: list[str]) -> str:
    """Parse (and for training, validate) one README command; return what was done with it."""
    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    prog, args = argv[0], argv[1:]
    if prog in ("pip", "pytest"):
        return "not run (installs / the test suite itself)"
    if prog == "accelerate":
        from accelerate.commands.launch import launch_command_parser

        assert args[0] == "launch", argv
        parsed = launch_command_parser().parse_args(args[1:])
        prog, args = parsed.training_script, parsed.training_script_args
    elif prog == "torchrun":
        from torch.distributed.run import get_args_parser

        parsed = get_args_parser().parse_args(args)
        if parsed.module:
            assert parsed.training_script == "timm_dynmix.timm_train", argv
            prog, args = "timm-dynmix", ["timm-train", *parsed.training_script_args]
        else:
            prog, args = parsed.training_script, parsed.training_script_args
    if prog == "examples/train.py":
        assert (ROOT / prog).is_file()
        _train_options(args)
        return "parsed and validated"
    assert prog == "timm-dynmix", argv
    from timm_dynmix.cli import COMMANDS, build_parser

    command = args[0]
    assert command in COMMANDS, argv
    parsed = build_parser(command).parse_args(args)
    if command == "train":
        _train_options(args[1:])
        return "parsed and validated"
    if command == "timm-train":
        from timm_dynmix import rewrite_timm_train_args

        rewrite_timm_train_args(parsed.script_args)  # refuses contradicting or unknown DynMix flags
    return "parsed"


def test_shell_commands_parse():
    cmds = commands()
    assert len(cmds) > 20
    done = {}
    for line, argv in cmds:
        try:
            done[line] = _check_command(argv)
        except (SystemExit, Exception) as e:  # argparse exits on a bad option
            pytest.fail(f"README.md:{line}: {shlex.join(argv)}: {type(e).__name__}: {e}")
    assert sum(v == "parsed and validated" for v in done.values()) >= 8, done
