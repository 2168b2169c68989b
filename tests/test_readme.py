"""README's code blocks, extracted and exercised: Python snippets run verbatim (offline, tiny data), shell commands
parsed by the parsers that will read them.

* Every Python block runs as written, in README order, in one subprocess (the imports are paid once), each in a
  fresh namespace unless ``CONTINUES`` says it continues an earlier block (as its text says). They run in a working
  folder prepared as a reader's would be after the commands above them, shrunk: ``output/``, the quickstart's model
  (``timm_dynmix.train.train`` with examples/train.py's defaults on 32 digit scans, 2 steps); ``c10c-500/``, a
  benchmark made by ``make_c`` (the ``make-c`` command's code) from 8 digit scans; ``my_images/``, an image folder
  of digit scans; and a loopback Hub (tests/hub/hub_server.py) holding ``output/``'s model as
  ``my-org/wrn40_2.dynmix_cifar10``, with ``HF_ENDPOINT`` pointing at it, so that nothing leaves the machine. No
  GPU is visible: ``device`` resolves to the CPU.
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

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import EVAL_EXTRA, EVAL_EXTRA_FILES, ROOT

sys.path.insert(0, str(ROOT / "tests" / "hub"))
from hub_server import LoopbackHub

README = ROOT / "README.md"
HUB_REPO = "my-org/wrn40_2.dynmix_cifar10"  # the repo README's Hub snippets load

# Python blocks that continue an earlier block, as their text says: a line of the block -> a line of the block whose
# namespace it continues
CONTINUES = {
    "aug = DynamicMixupBatch(": "my_dataset = [",  # the Python API example's loop on the device
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


def _continued(code: str, python_blocks: list[tuple[int, str]]) -> int | None:
    """The line of the block whose namespace ``code`` continues, or None."""
    for key, parent_key in CONTINUES.items():
        if key in code:
            parents = [line for line, other in python_blocks if parent_key in other]
            assert len(parents) == 1, f"CONTINUES: {parent_key!r} must be in exactly one README block: {parents}"
            return parents[0]
    return None


RUNNER = """
import json, sys, time, traceback, warnings
failures, namespaces, seconds = {}, {}, {}
for line, code, parent in json.loads(sys.stdin.read()):
    namespace = namespaces[line] = namespaces[parent] if parent else {"__name__": "__readme__"}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except BaseException:
            failures[line] = traceback.format_exc()[-3000:]
    ours = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)
            and str(w.message).startswith("timm_dynmix") and "deprecated" in str(w.message)]
    if ours and line not in failures:  # README shows the current names
        failures[line] = "uses what timm-dynmix deprecates: " + "; ".join(ours)
    seconds[line] = round(time.perf_counter() - start, 1)
print(json.dumps({"failures": failures, "seconds": seconds}))
"""


def _digit_images(n: int) -> tuple[list, np.ndarray]:
    """The first ``n`` of scikit-learn's digit scans as 32x32 RGB images (as the Python API snippet makes them)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    return ([Image.fromarray(np.uint8(a * 15)).resize((32, 32)).convert("RGB") for a in digits.images[:n]],
            digits.target[:n])


@pytest.fixture
def reader_folder(tmp_path) -> Path:
    """A working folder as a reader's would be after README's commands, shrunk to a few images."""
    import importlib.util

    for name in (*EVAL_EXTRA, *EVAL_EXTRA_FILES):  # make-c and the robustness snippet need the eval extra
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs the eval extra ({name} missing): pip install 'timm-dynmix[eval]'")
    # make_c from its module, not the package root: an old-path import earlier in the session (`import
    # timm_dynmix.make_c`, as tests/test_package.py does) rebinds the root's name to that module, as Python does
    from timm_dynmix.robustness.make_c import make_c
    from timm_dynmix.train import TrainConfig, train

    root = tmp_path / "reader"
    # `accelerate launch examples/train.py` (examples/train.py's defaults: digits, ResNet-8, DynMix + JSD), 2 steps
    res = train(TrainConfig(output_dir=str(root / "output"), max_train_samples=32, max_eval_samples=16, batch_size=16,
                            epochs=1, num_workers=0, num_threads=1))
    assert res["completed"] and (root / "output" / "model.safetensors").is_file()
    # `timm-dynmix make-c ... --out c10c-500`, on 8 digit scans
    make_c("digits", root / "c10c-500", max_per_cell=8, progress=False)
    # an image folder (one sub-folder per class)
    images, labels = _digit_images(40)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "my_images" / ("train" if i < 30 else "test") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:03d}.png")
    return root


def test_python_blocks_run_verbatim(reader_folder, tmp_path):
    python_blocks = blocks("python")
    run = [(line, code, _continued(code, python_blocks)) for line, code in python_blocks]
    assert len(run) >= 10, run  # the Python API, Trainer, device, AugMix, PRIME, timm, train.py, eval, save, load
    assert sum(parent is not None for *_, parent in run) == len(CONTINUES), "a CONTINUES key matches no README block"
    cwd, output = reader_folder, reader_folder / "output"
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    with LoopbackHub(lifetime_s=600) as hub:
        hub.add_repo(HUB_REPO, {name: (output / name).read_bytes()
                                for name in ("config.json", "model.safetensors", "README.md")})
        env = {**keep, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0",
               "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1,localhost",
               "CUDA_VISIBLE_DEVICES": "", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}  # 1 thread: a shared CPU
        proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(run), capture_output=True, text=True,
                              cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("seconds per README block (line: s):", result["seconds"])
    failures = result["failures"]
    assert not failures, "\n\n".join(f"README.md:{k}:\n{v}" for k, v in failures.items())
    # what the blocks say they do, they did
    report = json.loads((cwd / "reports" / "dynmix" / "report.json").read_text())  # the robustness snippet's
    assert report["dataset"]["type"] == "make-c" and 0 <= report["corruption_error"] <= 100
    card = (cwd / "out" / "README.md").read_text()  # save_pretrained's card, with that report
    assert report["dataset"]["name"] in card and f"{report['corruption_error']:.2f}" in card
    assert (cwd / "hf-output").is_dir()  # the Trainer's output_dir
    assert any((tmp_path / "hf-home" / "hub").glob("models--my-org--wrn40_2.dynmix_cifar10"))
    # the loopback Hub is the only server anything asked, and only for the repo README loads
    asked = [request for request in hub.log if request[1] != "/api/agent-harnesses"]  # huggingface_hub's own probe
    assert asked and all(HUB_REPO in path for _, path, _ in asked), [r for r in asked if HUB_REPO not in r[1]]


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
