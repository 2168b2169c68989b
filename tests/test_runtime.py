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
