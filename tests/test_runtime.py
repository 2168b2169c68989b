"""runtime: device-side normalization of uint8 batches, and accelerator detection."""

from __future__ import annotations

import pytest
import torch

from timm_dynmix.runtime import Uint8Normalize, has_accelerator


def test_uint8_normalize_matches_to_tensor_then_normalize():
    x = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    want = (x.float() / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    got = Uint8Normalize(mean, std)(x)
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-5)
    assert Uint8Normalize([0.5], [0.5])(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)).item() == pytest.approx(1.0)
    assert not dict(Uint8Normalize([0.5], [0.5]).state_dict())  # buffers are not saved with a model


@pytest.mark.parametrize(("mean", "std", "match"), [
    ((0.5, 0.5), (0.5,), "same number of values"),
    ((), (), "same number of values"),
    ((0.5,), (0.0,), r"std values must be > 0, got \[0.0\]"),
])
def test_uint8_normalize_refuses_bad_stats(mean, std, match):
    with pytest.raises(ValueError, match=match):
        Uint8Normalize(mean, std)


def test_has_accelerator_follows_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert has_accelerator() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch, "xpu", None) is not None:
        monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert has_accelerator() is False
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert has_accelerator() is True


def test_cpu_model_names_the_processor():
    from timm_dynmix.runtime import cpu_model

    name = cpu_model()
    assert isinstance(name, str) and name and "\n" not in name and not name.startswith("model name")


def test_gathered_outputs_is_the_one_evaluation_loop(monkeypatch):
    """The trainer's top-1 and the robustness evaluation both run through runtime.gathered_outputs."""
    from accelerate import Accelerator

    import timm_dynmix.robustness.evaluate as robust
    import timm_dynmix.runtime as runtime
    from timm_dynmix.train.loop import evaluate_top1

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    x, y = torch.randn(10, 3, 2, 2), torch.randint(0, 3, (10,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    seen = []
    real = runtime.gathered_outputs
    monkeypatch.setattr("timm_dynmix.train.loop.gathered_outputs", lambda *a: seen.append("train") or real(*a))
    monkeypatch.setattr(robust, "gathered_outputs", lambda *a: seen.append("robustness") or real(*a))
    got = evaluate_top1(model, loader, accelerator)
    with torch.no_grad():
        logits = model(x)
    top1 = 100 * (logits.argmax(-1) == y).float().mean().item()
    assert got["eval_samples"] == 10 and got["clean_top1"] == pytest.approx(top1)
    assert got["clean_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    u8 = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    cells = [(u8[i], int(i % 3), i) for i in range(5)]
    out = robust._run(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval(), cells,
                      accelerator=accelerator, batch_size=2, num_workers=0, progress=False, desc="t")
    assert seen == ["train", "robustness"] and list(out["label"]) == [0, 1, 2, 0, 1]
