"""The timm train.py launcher: argument rewriting, patches, timm's training API through them, runpy plumbing."""

import argparse
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import timm.loss
import timm.loss.jsd
import torch
from timm.data import AugMixDataset, create_dataset, create_loader, create_transform
from timm.data import transforms_factory as tf
from timm.optim import create_optimizer_v2

from timm_dynmix import DynamicMixup, JsdLoss, parse_config
from timm_dynmix.cli import main
from timm_dynmix.integrations.timm import TIMM_KNOWN_GOOD, is_registered
from timm_dynmix.integrations.timm_train import (
    BatchedViewsLoader,
    JsdCrossEntropy,
    batched_loader_patched,
    check_timm,
    rewrite_args,
    timm_patched,
)

ROOT = Path(__file__).resolve().parents[2]
TIMM_JSD = timm.loss.jsd.JsdCrossEntropy  # timm's own class, before any patch
CANON_FULL = str(parse_config("dynmix"))  # dynmix-m3-d2-p0.5-a1-wpair-b0-n2-ocifar
CANON = CANON_FULL.removesuffix("-ocifar")  # what the launcher passes: the hook picks the op set from the image size
CANON_N1 = str(parse_config("dynmix-n1")).removesuffix("-ocifar")
DEFAULT_ADDED = ("--aa", CANON, "--aug-splits", "3", "--jsd-loss", "--smoothing", "0")


def write_yaml(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# argument rewriting


def test_aug_dynmix_becomes_timm_flags_where_it_was():
    out = rewrite_args(["--model", "resnet18", "--aug", "dynmix", "-b", "32", "/data"])
    assert out.argv == ("--model", "resnet18", *DEFAULT_ADDED, "-b", "32", "/data")
    assert out.added == DEFAULT_ADDED and out.config == parse_config("dynmix") and out.jsd_weight is None


def test_config_sets_the_number_of_splits_and_equals_form():
    out = rewrite_args(["--aug=dynmix-n3-m5-windep", "--model=resnet18"])
    assert out.argv == ("--aa", "dynmix-m5-d2-p0.5-a1-windep-b0-n3", "--aug-splits", "4", "--jsd-loss",
                        "--smoothing", "0", "--model=resnet18")


@pytest.mark.parametrize("explicit", [
    ["--smoothing", "0.1"], ["--smoothing=0.1"], ["--aug-splits", "3"], ["--aug-splits=3"], ["--jsd-loss"],
    ["--aa", "dynmix-m3"], ["--aa=dynmix-d2-n2"],
])
def test_explicit_flags_win(explicit):
    out = rewrite_args(["--aug", "dynmix", *explicit])
    assert out.argv[-len(explicit):] == tuple(explicit)  # kept as the user wrote them
    flag = explicit[0].split("=")[0]
    assert flag not in out.added
    assert len(out.added) == len(DEFAULT_ADDED) - (1 if flag == "--jsd-loss" else 2)


def test_values_from_the_yaml_config_count_as_set(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", """\
        model: resnet18
        smoothing: 0.2
        aug_splits: 3
    """)
    for spelling in (["-c", cfg], [f"--config={cfg}"], ["--config", cfg], [f"-c{cfg}"], [f"-c={cfg}"], ["--conf", cfg]):
        out = rewrite_args([*spelling, "--aug", "dynmix"])
        assert out.added == ("--aa", CANON, "--jsd-loss"), spelling
        assert out.argv == (*spelling, "--aa", CANON, "--jsd-loss")


def test_command_line_overrides_yaml_as_in_train_py(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", "aug_splits: 2\nmixup: 0.8\n")
    out = rewrite_args(["-c", cfg, "--aug", "dynmix", "--aug-splits", "3", "--mixup", "0"])
    assert "--aug-splits" not in out.added
    with pytest.raises(ValueError, match="--aug-splits 2 conflicts with --aug dynmix"):
        rewrite_args(["-c", cfg, "--aug", "dynmix", "--mixup", "0"])


def test_aug_and_jsd_weight_in_yaml_are_added_at_the_end(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", "aug: dynmix-n1\njsd_weight: 4\n")
    out = rewrite_args(["-c", cfg, "--model", "m", "--", "/data"])
    assert out.argv == ("-c", cfg, "--model", "m", "--aa", CANON_N1, "--aug-splits", "2",
                        "--jsd-loss", "--smoothing", "0", "--", "/data")
    assert out.jsd_weight == 4.0


def test_jsd_off_in_yaml_is_kept_with_a_note(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", "jsd_loss: false\n")
    out = rewrite_args(["-c", cfg, "--aug", "dynmix"])
    assert "--jsd-loss" not in out.argv and any("without the JSD consistency loss" in n for n in out.notes)
    assert any("op set" in n for n in out.notes)  # no o key: the hook picks the op set from the image size
    assert not any("op set" in n for n in rewrite_args(["--aug", "dynmix-ocifar"]).notes)
    with pytest.raises(ValueError, match="--jsd-weight sets the weight of the JSD consistency loss, which is off"):
        rewrite_args(["-c", cfg, "--aug", "dynmix", "--jsd-weight", "3"])


def test_jsd_weight_is_removed_and_read():
    for argv in (["--aug", "dynmix", "--jsd-weight", "6", "-b", "8"], ["--jsd-weight=6", "--aug=dynmix", "-b", "8"]):
        out = rewrite_args(argv)
        assert out.jsd_weight == 6.0 and not any(a.startswith("--jsd-weight") for a in out.argv)
        assert out.argv[-2:] == ("-b", "8")
    # also with timm's flags written by hand
    assert rewrite_args(["--aa", "dynmix", "--aug-splits", "3", "--jsd-loss", "--jsd-weight", "1.5"]).jsd_weight == 1.5


def test_without_aug_arguments_pass_through_unchanged():
    argv = ["--model", "resnet18", "--aa", "rand-m9-mstd0.5", "--aug-splits", "3", "--jsd-loss", "--mixup", "0.2"]
    out = rewrite_args(argv)
    assert out.argv == tuple(argv) and out.added == () and out.config is None
    out = rewrite_args(["--aa", "dynmix-m4"])  # a DynMix --aa alone: validated, DynMix without splits
    assert out.argv == ("--aa", "dynmix-m4") and out.config.magnitude == 4


def test_only_the_part_before_double_dash_is_read():
    out = rewrite_args(["--aug", "dynmix", "--", "--aug", "x"])
    assert out.argv == (*DEFAULT_ADDED, "--", "--aug", "x")


@pytest.mark.parametrize("argv, error, match", [
    (["--aug", "dynmix", "--aug-splits", "2"], ValueError,
     r"--aug-splits 2 conflicts with --aug dynmix: the config has n2 \(2 mixed view\(s\) \+ the clean view = 3 splits\)"
     r"\. Drop --aug-splits, or write n1 in the config for 2 splits"),
    (["--aug", "dynmix", "--aug-splits", "0"], ValueError, "give --aa dynmix... instead of --aug"),
    (["--aug", "dynmix", "--aa", "rand-m9-mstd0.5"], ValueError,
     "--aa rand-m9-mstd0.5 conflicts with --aug dynmix: both choose the training augmentation"),
    (["--aug", "dynmix", "--aa=dynmix-m5"], ValueError, "are different DynMix configs; give only one of them"),
    (["--aug", "dynmix", "--mixup", "0.2"], ValueError,
     "--mixup cannot be combined with --aug dynmix: Mixup/CutMix does not work with augmentation splits"),
    (["--aug", "dynmix", "--cutmix=1", "--cutmix-minmax", "0.2", "0.8"], ValueError, "--cutmix / --cutmix-minmax"),
    (["--aug", "rand-m9"], ValueError, "--aug takes a DynMix config .* or a batched augmentation"),
    (["--aug", "augmix-timm"], ValueError, "timm's own per-image AugMix"),
    (["--aug", "augmix-m3-mstd0.5"], ValueError, "unknown section 'mstd0.5'"),
    (["--aug", "augmix", "--aa", "augmix-m3"], ValueError, "--aa augmix-m3 conflicts with --aug augmix"),
    (["--aug", "augmix", "--aug-splits", "1"], ValueError, "give 2 to 9 splits"),
    (["--aug", "augmix", "--mixup", "0.5"], ValueError, "--mixup cannot be combined with --aug augmix"),
    (["--aug", "dynmix-z9"], ValueError, r"--aug dynmix-z9: unknown section 'z9'"),
    (["--aug", "dynmix-m99"], ValueError, "DynMix magnitude must be in"),
    (["--aa", "dynmix-m99"], ValueError, r"--aa dynmix-m99: DynMix magnitude must be in"),
    (["-b", "8", "--aug"], ValueError, "--aug needs a value"),
    (["--aug="], ValueError, "--aug needs a value, got an empty one"),
    (["--aug", "dynmix", "--jsd-weight", "-1"], ValueError, "--jsd-weight must be >= 0"),
    (["--aug", "dynmix", "--jsd-weight", "nan"], ValueError, "--jsd-weight must be a finite number"),
    (["--jsd-weight", "3"], ValueError, "which is off"),
    (["--aug", "dynmix", "--smooth", "0.1"], ValueError, "--smooth abbreviates --smoothing: spell the flag out"),
    (["--aug", "dynmix", "--aug-s", "3"], ValueError, "--aug-s abbreviates --aug-splits"),
    (["--aug", "dynmix", "--aug-splits", "x"], ValueError, "--aug-splits must be an integer, got 'x'"),
    (["--aa", "dynmix-n3", "--aug-splits", "3"], ValueError, "--aug-splits 3 does not match --aa dynmix-n3"),
    (["--jsd-loss=1"], ValueError, "--jsd-loss is a switch and takes no value"),
    (["-c"], ValueError, "-c needs a YAML file"),
    (["-c", "no/such/file.yaml"], FileNotFoundError, "-c/--config: no YAML file at 'no/such/file.yaml'"),
    ("--aug dynmix", TypeError, "argv must be a sequence of strings"),
])
def test_refused_with_a_message(argv, error, match):
    with pytest.raises(error, match=match):
        rewrite_args(argv)


@pytest.mark.parametrize("argv, added, batched, num_mixes", [
    (["--aug", "augmix"], ("--aug-splits", "3", "--jsd-loss", "--smoothing", "0"), "augmix", 2),
    (["--aug", "augmix-m3-w3-d-1-a1", "--aug-splits", "2"], ("--jsd-loss", "--smoothing", "0"),
     "augmix-m3-w3-d-1-a1", 1),
    (["--aug=augmix_official-s1", "--smoothing", "0.1", "--jsd-loss"], ("--aug-splits", "3"),
     "augmix_official-s1", 2),
    (["--aug", "prime"], ("--aug-splits", "3", "--jsd-loss", "--smoothing", "0"), "prime", 2),
    (["--aug", "prime-imagenet", "--aug-splits", "2"], ("--jsd-loss", "--smoothing", "0"), "prime-imagenet", 1),
])
def test_batched_augmix_becomes_splits_and_jsd_without_aa(argv, added, batched, num_mixes):
    out = rewrite_args(["--model", "m", *argv, "/data"])
    assert out.added == added and "--aa" not in out.argv
    assert not any(a == "--aug" or a.startswith("--aug=") for a in out.argv)
    assert out.batched == batched and out.num_mixes == num_mixes and out.config is None
    assert rewrite_args(["--aug", "dynmix"]).batched is None


STAND_IN_LOADER = '''\
"""A stand-in for timm's train.py's data path: its imports, AugMixDataset for splits, create_loader, one batch."""
import argparse
import json
import sys

import torch
from timm.data import AugMixDataset, create_dataset, create_loader

parser = argparse.ArgumentParser()
parser.add_argument("data")
parser.add_argument("--aa", type=str, default=None)
parser.add_argument("--aug-splits", type=int, default=0)
parser.add_argument("--jsd-loss", action="store_true", default=False)
parser.add_argument("--smoothing", type=float, default=0.1)
parser.add_argument("--reprob", type=float, default=0.0)
parser.add_argument("--no-prefetcher", action="store_false", dest="prefetcher", default=True)
args = parser.parse_args()
torch.manual_seed(0)
dataset = create_dataset("", root=args.data, split="train", is_training=True, batch_size=4)
if args.aug_splits > 1:
    dataset = AugMixDataset(dataset, num_splits=args.aug_splits)
loader = create_loader(dataset, input_size=(3, 32, 32), batch_size=4, is_training=True, auto_augment=args.aa,
                       num_aug_splits=args.aug_splits, use_prefetcher=args.prefetcher, re_prob=args.reprob,
                       device=torch.device("cpu"), num_workers=0, color_jitter=0.4)
x, y = next(iter(loader))
torch.save({"x": x, "y": y}, args.data + "/batch.pt")
print("RECEIVED " + json.dumps({"type": type(loader).__name__, "len": len(loader), "shape": list(x.shape)}))
'''


def test_batched_augmix_runs_through_timms_create_loader(tmp_path, real_images, capsys):
    """--aug augmix with timm's own create_loader: uint8 crops -> 3 normalized views made in one batched call."""
    make_image_folder(tmp_path / "data", real_images[:8])
    script = tmp_path / "train.py"
    script.write_text(STAND_IN_LOADER)
    before = timm.data.create_loader
    assert main(["timm-train", str(script), "--aug", "augmix", str(tmp_path / "data")]) == 0
    out = capsys.readouterr()
    got = received(out.out)
    assert got == {"type": "BatchedViewsLoader", "len": 2, "shape": [12, 3, 32, 32]}
    assert "--aug augmix -> --aug-splits 3 --jsd-loss --smoothing 0; 2 mixed view(s)" in out.err
    batch = torch.load(tmp_path / "data" / "batch.pt")
    x, y = batch["x"], batch["y"]
    assert x.dtype == torch.float32 and torch.equal(y, y[:4].repeat(3))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    clean = (x[:4] * std + mean) * 255  # the clean split: uint8 crops, no colour jitter, normalized
    assert float((clean - clean.round()).abs().max()) < 1e-3
    assert not torch.equal(x[:4], x[4:8]) and not torch.equal(x[4:8], x[8:])
    assert timm.data.create_loader is before and timm.data.loader.create_loader is before  # restored
    assert main(["timm-train", str(script), "--aug", "augmix", "--no-prefetcher", str(tmp_path / "data")]) == 1
    assert "drop --no-prefetcher" in capsys.readouterr().err
    assert main(["timm-train", str(script), "--aug", "augmix", "--reprob", "0.25", str(tmp_path / "data")]) == 1
    assert "cannot be combined with random erasing" in capsys.readouterr().err
    assert timm.data.create_loader is before


def test_bad_yaml_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must hold a mapping of argument names to values, got a list"):
        rewrite_args(["-c", write_yaml(tmp_path / "l.yaml", "- 1\n- 2\n")])
    with pytest.raises(ValueError, match="is not valid YAML"):
        rewrite_args(["-c", write_yaml(tmp_path / "b.yaml", "a: [1\n")])
    with pytest.raises(ValueError, match="jsd_loss in the YAML config must be true or false, got 'no'"):
        rewrite_args(["-c", write_yaml(tmp_path / "j.yaml", "jsd_loss: 'no'\n"), "--aug", "dynmix"])


# ---------------------------------------------------------------------------------------------------------------
# patches and compatibility


def test_timm_patched_replaces_and_restores_every_binding():
    bound = [m for name, m in sys.modules.items() if name.startswith("timm.") and vars(m).get("JsdCrossEntropy")
             is TIMM_JSD]
    assert timm.loss in bound and timm.loss.jsd in bound
    assert not is_registered()
    with timm_patched() as cls:
        assert cls is JsdCrossEntropy and all(m.JsdCrossEntropy is JsdCrossEntropy for m in bound)
        from timm.loss import JsdCrossEntropy as looked_up  # what train.py does

        loss = looked_up(num_splits=3, smoothing=0.1)  # train.py's call
        assert isinstance(loss, JsdLoss) and loss.weight == 12.0 and loss.smoothing == 0.1
        assert looked_up(num_splits=2, alpha=5, smoothing=None).weight == 5.0
        assert is_registered()
        t = create_transform(32, is_training=True, auto_augment=CANON, separate=True)
        assert isinstance(t[1].transforms[0], DynamicMixup)
    assert all(m.JsdCrossEntropy is TIMM_JSD for m in bound) and not is_registered()


def test_jsd_weight_replaces_alpha_while_patched():
    with timm_patched(jsd_weight=6):
        assert timm.loss.JsdCrossEntropy(num_splits=3, smoothing=0.0).weight == 6.0
        assert timm.loss.JsdCrossEntropy(num_splits=3, alpha=2).weight == 6.0
    assert JsdCrossEntropy.jsd_weight is None
    with pytest.raises(ValueError, match="jsd_weight must be a finite number >= 0 or None, got -2"):
        with timm_patched(jsd_weight=-2):
            pass


def test_adapter_matches_timm_and_stays_finite():
    torch.manual_seed(0)
    logits = torch.randn(24, 10) * 3
    target = torch.randint(0, 10, (8,)).repeat(3)
    ours = JsdCrossEntropy(num_splits=3, alpha=12, smoothing=0.1)(logits, target)
    theirs = TIMM_JSD(num_splits=3, alpha=12, smoothing=0.1)(logits, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # saturated softmax: timm's clamp-then-log gives NaN gradients, ours does not
    big = (torch.randn(24, 10) * 1e4).requires_grad_()
    JsdCrossEntropy(num_splits=3)(big, target).backward()
    assert torch.isfinite(big.grad).all()


def test_check_timm_names_the_known_versions(monkeypatch):
    assert check_timm() == timm.__version__
    monkeypatch.setattr(timm, "__version__", "9.9.9")
    with pytest.warns(UserWarning, match="timm 9.9.9 is outside the versions .* was tested with"):
        check_timm()
    monkeypatch.delattr(timm.loss, "JsdCrossEntropy")
    with pytest.raises(RuntimeError, match=f"timm 9.9.9 moved timm.loss.JsdCrossEntropy.*knows timm {TIMM_KNOWN_GOOD}"):
        check_timm()


def test_check_timm_notices_a_changed_signature(monkeypatch):
    class Changed(torch.nn.Module):
        def __init__(self, splits=3, lam=12):
            super().__init__()

    monkeypatch.setattr(timm.loss, "JsdCrossEntropy", Changed)
    monkeypatch.setattr(timm.loss.jsd, "JsdCrossEntropy", Changed)
    with pytest.raises(RuntimeError, match=r"the arguments of timm.loss.JsdCrossEntropy .*got splits, lam"):
        check_timm()


def test_check_timm_notices_a_moved_dispatch(monkeypatch):
    monkeypatch.delattr(tf, "auto_augment_transform")
    with pytest.raises(RuntimeError, match="moved the auto-augment dispatch"):
        check_timm()


# ---------------------------------------------------------------------------------------------------------------
# timm's training API, driven as train.py drives it, through the launcher's rewriting and patches


def train_py_flags(argv):
    """The subset of train.py's flags this test needs, declared as train.py declares them."""
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir")
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--aa", type=str, default=None)
    p.add_argument("--aug-splits", type=int, default=0)
    p.add_argument("--jsd-loss", action="store_true", default=False)
    p.add_argument("--smoothing", type=float, default=0.1)
    return p.parse_args(argv)


def make_image_folder(root, images, classes=3, split="train"):
    for i, img in enumerate(images):
        folder = root / split / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:03d}.png")


def sgd_steps_on_three_views(loader, loss_fn, batch_size, check=None) -> int:
    """SGD on ``test_resnet`` over ``loader``'s clean + two augmented views, as train.py steps; returns the step count.

    Each batch must hold three float32 views of the same labels, the views must differ, the loss must be finite
    (``check(output, y, loss)`` may assert more), and the model's parameters must move.
    """
    model = timm.create_model("test_resnet", num_classes=3)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = create_optimizer_v2(model, "sgd", lr=0.05, momentum=0.9)
    steps = 0
    for x, y in loader:
        b = batch_size
        assert x.shape == (3 * b, 3, 32, 32) and x.dtype == torch.float32 and torch.equal(y, y[:b].repeat(3))
        clean, mix1, mix2 = torch.split(x, b)
        assert not torch.equal(clean, mix1) and not torch.equal(mix1, mix2)
        output = model(x)
        loss = loss_fn(output, y)
        assert torch.isfinite(loss)
        if check is not None:
            check(output, y, loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(before, model.parameters()))
    return steps


@pytest.mark.slow
def test_timm_training_api_through_the_launcher(tmp_path, real_images):
    make_image_folder(tmp_path / "data", real_images)
    plan = rewrite_args(["--data-dir", str(tmp_path / "data"), "--aug", "dynmix", "--jsd-weight", "8", "-b", "8"])
    args = train_py_flags(plan.argv)
    assert (args.aa, args.aug_splits, args.jsd_loss, args.smoothing) == (CANON, 3, True, 0.0)
    torch.manual_seed(0)
    with timm_patched(plan.jsd_weight):
        dataset = create_dataset("", root=args.data_dir, split="train", is_training=True, batch_size=args.batch_size)
        dataset = AugMixDataset(dataset, num_splits=args.aug_splits)
        loader = create_loader(dataset, input_size=(3, 32, 32), batch_size=args.batch_size, is_training=True,
                               auto_augment=args.aa, num_aug_splits=args.aug_splits, use_prefetcher=True,
                               device=torch.device("cpu"), num_workers=0, interpolation="bicubic")
        assert isinstance(dataset.augmentation.transforms[0], DynamicMixup)
        assert dataset.augmentation.transforms[0].config_str == CANON_FULL  # 32 px: the cifar op set
        if args.jsd_loss:  # train.py's choice of loss, by the name it imports
            loss_fn = timm.loss.JsdCrossEntropy(num_splits=args.aug_splits, smoothing=args.smoothing)
        assert isinstance(loss_fn, JsdLoss) and loss_fn.weight == 8.0
        b = args.batch_size

        def check(output, y, loss):  # the same value as timm's own loss, with the weight the launcher gave
            torch.testing.assert_close(loss, TIMM_JSD(num_splits=3, alpha=8.0, smoothing=0)(output, y),
                                       atol=1e-5, rtol=1e-5)
            assert loss > loss_fn.base_loss(output[:b], y[:b])  # views disagree: JS > 0

        assert sgd_steps_on_three_views(loader, loss_fn, b, check) == 3
    assert timm.loss.JsdCrossEntropy is TIMM_JSD and not is_registered()


@pytest.mark.parametrize("aug, cls_name", [("augmix", "AugMixBatch"), ("prime", "PrimeBatch")])
def test_batched_training_api_through_the_launcher(tmp_path, real_images, aug, cls_name):
    """--aug augmix / prime: timm's dataset, AugMixDataset, create_loader, JSD loss and SGD steps, as train.py."""
    make_image_folder(tmp_path / "data", real_images[:8])
    plan = rewrite_args(["--data-dir", str(tmp_path / "data"), "--aug", aug, "-b", "4"])
    args = train_py_flags(plan.argv)
    assert (args.aa, args.aug_splits, args.jsd_loss, args.smoothing) == (None, 3, True, 0.0)
    torch.manual_seed(0)
    with timm_patched(plan.jsd_weight), batched_loader_patched(plan.batched, plan.num_mixes):
        dataset = create_dataset("", root=args.data_dir, split="train", is_training=True, batch_size=args.batch_size)
        dataset = AugMixDataset(dataset, num_splits=args.aug_splits)
        loader = timm.data.create_loader(dataset, input_size=(3, 32, 32), batch_size=args.batch_size,
                                         is_training=True, auto_augment=args.aa, num_aug_splits=args.aug_splits,
                                         use_prefetcher=True, device=torch.device("cpu"), num_workers=0,
                                         interpolation="bicubic", color_jitter=0.4)
        assert isinstance(loader, BatchedViewsLoader) and type(loader.aug).__name__ == cls_name
        assert loader.aug.num_splits == 3 and len(loader) == 2
        if args.jsd_loss:  # train.py's choice of loss, by the name it imports
            loss_fn = timm.loss.JsdCrossEntropy(num_splits=args.aug_splits, smoothing=args.smoothing)
        assert isinstance(loss_fn, JsdLoss) and loss_fn.weight == 12.0  # timm's default alpha
        assert sgd_steps_on_three_views(loader, loss_fn, args.batch_size) == 2
    assert timm.loss.JsdCrossEntropy is TIMM_JSD and not is_registered()
    assert timm.data.create_loader.__module__.startswith("timm.")  # restored


TIMM_TRAIN_PY = os.environ.get("TIMM_DYNMIX_TIMM_TRAIN_PY", "")


@pytest.mark.skipif(not Path(TIMM_TRAIN_PY).is_file(),
                    reason="set TIMM_DYNMIX_TIMM_TRAIN_PY to the train.py of a pytorch-image-models checkout")
@pytest.mark.parametrize("aug", ["augmix", "prime"])
def test_timms_real_train_py_runs_batched_aug(tmp_path, real_images, aug):
    """timm's own train.py (not in the timm wheel) trains 2 steps with ``--aug augmix|prime`` through the launcher."""
    make_image_folder(tmp_path / "data", real_images[:8])
    make_image_folder(tmp_path / "data", real_images[8:11], split="validation")
    args = [TIMM_TRAIN_PY, "--aug", aug, "--data-dir", str(tmp_path / "data"), "--device", "cpu",
            "--model", "test_resnet", "--num-classes", "3", "--input-size", "3", "32", "32", "-b", "4",
            "--epochs", "1", "--workers", "0", "--output", str(tmp_path / "out"), "--experiment", "run",
            "--log-interval", "1", "--checkpoint-hist", "1", "--opt", "sgd", "--lr", "0.01", "--warmup-epochs", "0"]
    run = run_module(args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"--aug {aug} -> --aug-splits 3 --jsd-loss --smoothing 0; 2 mixed view(s)" in run.stderr
    assert "Train: 0 [   1/2 (100%)]" in run.stdout + run.stderr  # two steps of 4 images (12 views each)
    summary = (tmp_path / "out" / "run" / "summary.csv").read_text().splitlines()
    train_loss = float(summary[1].split(",")[1])
    assert summary[0].startswith("epoch,train_loss") and math.isfinite(train_loss) and train_loss > 0


# ---------------------------------------------------------------------------------------------------------------
# the launcher running a script: runpy, sys.argv, sys.path, -c YAML, exit codes

STAND_IN = '''\
"""A stand-in for timm's train.py: timm-like flags, a -c YAML pre-parser, prints what it received."""
import argparse
import json
import sys

import timm.data
import yaml
from timm.loss import JsdCrossEntropy

import helper  # a module next to the script

config_parser = argparse.ArgumentParser(add_help=False)
config_parser.add_argument("-c", "--config", default="", type=str)
parser = argparse.ArgumentParser()
parser.add_argument("data", nargs="?")
parser.add_argument("--model", default="resnet50")
parser.add_argument("-b", "--batch-size", type=int, default=128)
parser.add_argument("--aa", type=str, default=None)
parser.add_argument("--aug-splits", type=int, default=0)
parser.add_argument("--jsd-loss", action="store_true", default=False)
parser.add_argument("--smoothing", type=float, default=0.1)
parser.add_argument("--mixup", type=float, default=0.0)
parser.add_argument("--fail", type=str, default="")


def main():
    known, remaining = config_parser.parse_known_args()
    if known.config:
        with open(known.config) as f:
            parser.set_defaults(**yaml.safe_load(f))
    args = parser.parse_args(remaining)
    if args.fail == "raise":
        raise KeyError("boom inside the script")
    if args.fail == "exit":
        sys.exit(3)
    loss = JsdCrossEntropy(num_splits=args.aug_splits, smoothing=args.smoothing)
    stages = timm.data.create_transform(32, is_training=True, auto_augment=args.aa, separate=True)
    print("RECEIVED " + json.dumps({
        "argv": sys.argv, "name": __name__, "file": __file__, "args": vars(args), "helper": helper.VALUE,
        "loss": type(loss).__module__, "weight": loss.weight, "aug": repr(stages[1].transforms[0]),
    }))


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def stand_in(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "helper.py").write_text("VALUE = 42\n")
    script = folder / "train.py"
    script.write_text(STAND_IN)
    return script


def received(text):
    line = next(ln for ln in text.splitlines() if ln.startswith("RECEIVED "))
    return json.loads(line[len("RECEIVED "):])


def run_module(args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "timm_dynmix.timm_train", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.mark.slow
def test_python_m_runs_the_script_as_main_with_rewritten_argv(stand_in, tmp_path):
    cfg = write_yaml(tmp_path / "recipe.yaml", "model: tiny\nsmoothing: 0.05\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()  # not the script's folder: `import helper` needs the script's folder on sys.path
    proc = run_module([str(stand_in), "-c", cfg, "--aug=dynmix-m5", "--jsd-weight=6", "-b", "8", "/some/data"],
                      cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    got = received(proc.stdout)
    assert got["name"] == "__main__" and got["file"] == str(stand_in) and got["helper"] == 42
    canon = str(parse_config("dynmix-m5")).removesuffix("-ocifar")
    assert got["argv"] == [str(stand_in), "-c", cfg, "--aa", canon, "--aug-splits", "3", "--jsd-loss", "-b", "8",
                           "/some/data"]
    a = got["args"]
    assert (a["model"], a["smoothing"], a["aa"], a["aug_splits"], a["jsd_loss"], a["batch_size"], a["data"]) == (
        "tiny", 0.05, canon, 3, True, 8, "/some/data")  # the YAML's smoothing wins over the launcher's default
    assert got["loss"] == "timm_dynmix.integrations.timm_train" and got["weight"] == 6.0
    assert got["aug"].startswith("DynamicMixup(") and "m5" in got["aug"]
    assert f"--aug {canon} -> --aa {canon} --aug-splits 3 --jsd-loss" in proc.stderr
    assert "weight 6 from --jsd-weight" in proc.stderr
    assert "RuntimeWarning" not in proc.stderr  # the package does not import the launcher module before -m runs it


@pytest.mark.slow
def test_python_m_refuses_a_bad_config_before_the_script_runs(stand_in, tmp_path):
    proc = run_module([str(stand_in), "--aug", "dynmix-q1"], cwd=tmp_path)
    assert proc.returncode == 2 and "RECEIVED" not in proc.stdout
    assert "timm-dynmix timm-train: error: --aug dynmix-q1: unknown section 'q1'" in proc.stderr


def test_cli_runs_the_script_in_process_and_restores_state(stand_in, capsys):
    argv_before, path_before = list(sys.argv), list(sys.path)
    assert main(["timm-train", str(stand_in), "--aug", "dynmix-n1", "--model", "m"]) == 0
    got = received(capsys.readouterr().out)
    assert got["argv"][1:] == ["--aa", CANON_N1, "--aug-splits", "2", "--jsd-loss",
                               "--smoothing", "0", "--model", "m"]
    assert got["weight"] == 12.0 and got["loss"] == "timm_dynmix.integrations.timm_train"
    assert sys.argv == argv_before and sys.path == path_before
    assert timm.loss.JsdCrossEntropy is TIMM_JSD and not is_registered()


def test_cli_errors_and_exit_codes(stand_in, tmp_path, capsys):
    assert main(["timm-train", str(tmp_path / "missing.py"), "--aug", "dynmix"]) == 2
    assert "error: no training script at" in capsys.readouterr().err
    assert main(["timm-train", str(stand_in), "--aug", "dynmix", "--mixup", "0.5"]) == 2
    captured = capsys.readouterr()
    assert "--mixup cannot be combined with --aug dynmix" in captured.err and "RECEIVED" not in captured.out
    # an exception inside the script: its traceback and exit code 1, as Python gives
    assert main(["timm-train", str(stand_in), "--fail", "raise"]) == 1
    assert "KeyError: 'boom inside the script'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the script's own exit code passes through
        main(["timm-train", str(stand_in), "--fail", "exit"])
    assert e.value.code == 3
    assert timm.loss.JsdCrossEntropy is TIMM_JSD and not is_registered()


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["timm-train", "--help"])
    assert "--aug dynmix[-<config>]" in capsys.readouterr().out


def test_public_names(tmp_path):
    import timm_dynmix
    from timm_dynmix import timm_train

    assert all(hasattr(timm_dynmix, name) for name in timm_dynmix.__all__)
    assert timm_dynmix.launch_timm_train is timm_train.launch
    assert timm_dynmix.rewrite_timm_train_args is timm_train.rewrite_args
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        timm_dynmix.nope  # noqa: B018
    # the README's YAML for an edited train.py also passes the launcher's checks, unchanged
    cfg = write_yaml(tmp_path / "dynmix.yaml", f"aa: {CANON}\naug_splits: 3\njsd_loss: true\nsmoothing: 0.0\n")
    out = rewrite_args(["-c", cfg])
    assert out.argv == ("-c", cfg) and out.config == parse_config("dynmix")
