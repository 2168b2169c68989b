import pytest
import torch
import torch.nn.functional as F
from timm.loss import JsdCrossEntropy, SoftTargetCrossEntropy

from timm_dynmix import JsdLoss, js_divergence


def reference_jsd_loss(logits, target, num_splits, weight):
    """Float64 reference: CE on the clean split + weight * mean_k KL(p_k || M)."""
    logits = logits.double()
    b = logits.shape[0] // num_splits
    splits = logits.view(num_splits, b, -1)
    ce = F.cross_entropy(splits[0], target[:b])
    p = splits.softmax(-1)
    m = p.mean(0)
    kl = (p * (p.clamp_min(1e-300).log() - m.log())).sum(-1).mean(-1)  # per split, batch mean
    return ce + weight * kl.mean()


def test_identical_splits_give_exactly_the_base_loss():
    torch.manual_seed(0)
    logits = torch.randn(8, 10) * 5
    target = torch.randint(0, 10, (8,))
    loss = JsdLoss(num_splits=3)(logits.repeat(3, 1), target.repeat(3))
    assert torch.equal(loss, F.cross_entropy(logits, target))
    assert js_divergence(torch.stack([logits] * 3)).item() == 0.0


@pytest.mark.parametrize("num_splits", [2, 3, 4])
def test_matches_timm_and_float64(num_splits):
    torch.manual_seed(num_splits)
    logits = torch.randn(16 * num_splits, 100) * 3
    target = torch.randint(0, 100, (16,)).repeat(num_splits)
    ours = JsdLoss(num_splits=num_splits, weight=12)(logits, target)
    timm = JsdCrossEntropy(num_splits=num_splits, alpha=12, smoothing=0)(logits, target)
    torch.testing.assert_close(ours, timm, atol=1e-5, rtol=1e-5)
    ref = reference_jsd_loss(logits, target, num_splits, 12.0)
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)
    # target given once per image works the same
    torch.testing.assert_close(JsdLoss(num_splits=num_splits)(logits, target[:16]), ours)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_extreme_logits_stay_finite(dtype):
    """Logit gaps of 1e4: our loss and gradients are finite and match float64; timm's clamp-then-log is not."""
    torch.manual_seed(0)
    base = torch.randn(3, 4, 5)
    base[0, :, 0] += 1e4  # clean split: one class dominates completely
    base[1, :, 1] += 1e4  # view 1 dominates on another class
    logits = base.reshape(12, 5).to(dtype).requires_grad_(True)
    target = torch.tensor([0, 1, 2, 3])
    loss = JsdLoss(num_splits=3)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()
    ref = reference_jsd_loss(logits.detach().double(), target, 3, 12.0)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-3)


def test_timm_clamp_gives_nan_gradients_where_we_do_not():
    logits = torch.tensor([[1e4, 0.0], [0.0, 1e4], [0.0, 1e4]], requires_grad=True)
    target = torch.tensor([0])
    timm_loss = JsdCrossEntropy(num_splits=3, alpha=12, smoothing=0)(logits, target)
    timm_loss.backward()
    timm_bad = not torch.isfinite(logits.grad).all()
    logits.grad = None
    JsdLoss(num_splits=3)(logits, target).backward()
    assert torch.isfinite(logits.grad).all()
    assert timm_bad  # documents why JsdLoss exists; if timm fixes it, this assertion tells us


def test_soft_targets_and_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(12, 5)
    soft = torch.softmax(torch.randn(4, 5), -1)
    loss = JsdLoss(num_splits=3, base_loss=SoftTargetCrossEntropy())(logits, soft.repeat(3, 1))
    expected = SoftTargetCrossEntropy()(logits[:4], soft) + 12 * js_divergence(logits.view(3, 4, 5))
    torch.testing.assert_close(loss, expected)
    smooth = JsdLoss(num_splits=3, smoothing=0.1)(logits, torch.arange(4))
    assert smooth > JsdLoss(num_splits=3)(logits, torch.arange(4)) - 1  # runs, finite
    assert torch.isfinite(smooth)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_splits": 1}, "num_splits must be an integer >= 2"),
    ({"weight": -1.0}, "weight must be a finite number >= 0"),
    ({"smoothing": 1.0}, r"smoothing must be in \[0, 1\)"),
    ({"smoothing": 0.1, "base_loss": SoftTargetCrossEntropy()}, "give it to your base_loss"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JsdLoss(**kwargs)


def test_bad_batches():
    loss = JsdLoss(num_splits=3)
    with pytest.raises(ValueError, match="batch of 10 logits is not divisible by num_splits=3"):
        loss(torch.randn(10, 4), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target has 5 rows; expected 4 .* or 12"):
        loss(torch.randn(12, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(12), torch.zeros(4, dtype=torch.long))
