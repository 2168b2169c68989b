import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.loss import JsdCrossEntropy, SoftTargetCrossEntropy

from timm_dynmix import JsdLoss, TimmJsdCrossEntropy, js_divergence
from timm_dynmix.integrations.timm_train import JsdCrossEntropy as TimmSignatureJsd


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


def reference_js64(logits, num_splits):
    """Float64 JS divergence in log space (log M by logsumexp): finite for any finite logits, differentiable."""
    logp = F.log_softmax(logits.double().view(num_splits, logits.shape[0] // num_splits, -1), dim=-1)
    log_m = torch.logsumexp(logp, dim=0) - math.log(num_splits)
    return (logp.exp() * (logp - log_m)).sum(-1).mean(-1).mean()


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


@pytest.mark.parametrize("num_splits", [2, 3])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_reference(num_splits, smoothing):
    """CE with label smoothing on the clean split (torch's definition) + weight * float64 JS."""
    torch.manual_seed(10 * num_splits + int(10 * smoothing))
    batch, classes = 8, 7
    logits = torch.randn(num_splits * batch, classes) * 4
    labels = torch.randint(0, classes, (batch,))
    ref = (F.cross_entropy(logits[:batch].double(), labels, label_smoothing=smoothing)
           + 5.0 * reference_js64(logits, num_splits))
    for target in (labels, labels.repeat(num_splits)):
        ours = JsdLoss(num_splits=num_splits, weight=5.0, smoothing=smoothing)(logits, target)
        torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)
    # the timm-signature class with its smoothing argument: same reference (weight 12)
    ref12 = (F.cross_entropy(logits[:batch].double(), labels, label_smoothing=smoothing)
             + 12.0 * reference_js64(logits, num_splits))
    timm_sig = TimmSignatureJsd(num_splits=num_splits, alpha=12, smoothing=smoothing or None)
    torch.testing.assert_close(timm_sig(logits, labels).double(), ref12, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_extreme_logits_stay_finite(dtype):
    """Logit gaps of 1e4: our loss and gradients are finite and match a float64 log-space reference."""
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
    x64 = logits.detach().double().requires_grad_(True)
    (F.cross_entropy(x64[:4], target) + 12.0 * reference_js64(x64, 3)).backward()
    torch.testing.assert_close(logits.grad.double(), x64.grad, rtol=1e-2, atol=1e-3)


def test_finite_gradients_where_clamp_then_log_underflows():
    """Softmax underflow to exact 0: our gradients are finite and equal the float64 log-space ones.

    For comparison (recorded, not asserted: it is timm's behaviour, not ours): on these logits timm 1.0.31's
    ``JsdCrossEntropy(num_splits=3, alpha=12, smoothing=0)``, which takes ``log(clamp(M, 1e-7, 1))``, returns a
    finite loss (7.638) but NaN gradients for every logit.
    """
    logits = torch.tensor([[1e4, 0.0], [0.0, 1e4], [0.0, 1e4]], requires_grad=True)
    target = torch.tensor([0])
    loss = JsdLoss(num_splits=3)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    x64 = logits.detach().double().requires_grad_(True)
    ref = F.cross_entropy(x64[:1], target) + 12.0 * reference_js64(x64, 3)
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(logits.grad.double(), x64.grad, rtol=1e-5, atol=1e-6)


def test_soft_targets():
    torch.manual_seed(0)
    logits = torch.randn(12, 5)
    soft = torch.softmax(torch.randn(4, 5), -1)
    loss = JsdLoss(num_splits=3, base_loss=SoftTargetCrossEntropy())(logits, soft.repeat(3, 1))
    expected = SoftTargetCrossEntropy()(logits[:4], soft) + 12 * js_divergence(logits.view(3, 4, 5))
    torch.testing.assert_close(loss, expected)
    once = JsdLoss(num_splits=3, base_loss=SoftTargetCrossEntropy())(logits, soft)
    torch.testing.assert_close(once, expected)


@pytest.mark.parametrize("true_splits, given_splits, batch", [(3, 2, 4), (2, 3, 6), (2, 4, 6), (4, 3, 3), (3, 6, 4)])
def test_wrong_num_splits_is_detected_when_the_batch_divides(true_splits, given_splits, batch):
    """Targets repeated per split (as collate_splits lays them out) expose a num_splits that contradicts them."""
    torch.manual_seed(batch)
    logits = torch.randn(true_splits * batch, 5)
    labels = torch.randperm(5)[:batch] if batch <= 5 else torch.arange(batch) % 5
    loss = JsdLoss(num_splits=given_splits)
    match = rf"target is not repeated per split for num_splits={given_splits}: .* split-major"
    with pytest.raises(ValueError, match=match):
        loss(logits, labels.repeat(true_splits))
    soft = F.one_hot(labels, 5).float() * 0.9 + 0.02
    with pytest.raises(ValueError, match=match):
        JsdLoss(num_splits=given_splits, base_loss=SoftTargetCrossEntropy())(logits, soft.repeat(true_splits, 1))
    # labels given once: a wrong num_splits is a row-count mismatch
    with pytest.raises(ValueError, match=rf"does num_splits={given_splits} match the number of views per image"):
        loss(logits, labels)
    JsdLoss(num_splits=true_splits)(logits, labels.repeat(true_splits))  # the right value is accepted


def test_targets_that_differ_between_splits_are_rejected():
    torch.manual_seed(0)
    logits = torch.randn(12, 5)
    labels = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"target\[:4\] == target\[4:8\] == \.\.\."):
        JsdLoss(num_splits=3)(logits, torch.cat([labels, labels, labels.flip(0)]))
    soft = torch.softmax(torch.randn(4, 5), -1)
    with pytest.raises(ValueError, match="not repeated per split for num_splits=3"):
        JsdLoss(num_splits=3, base_loss=SoftTargetCrossEntropy())(logits, torch.cat([soft, soft, soft * 0.5]))


def test_numpy_numbers_are_accepted():
    torch.manual_seed(0)
    logits = torch.randn(12, 5)
    target = torch.tensor([0, 1, 2, 3]).repeat(3)
    loss = JsdLoss(num_splits=np.int64(3), weight=np.float32(12), smoothing=np.float64(0.1))
    assert type(loss.num_splits) is int and loss.num_splits == 3
    assert type(loss.weight) is float and type(loss.smoothing) is float
    torch.testing.assert_close(loss(logits, target), JsdLoss(num_splits=3, weight=12.0, smoothing=0.1)(logits, target))


@pytest.mark.parametrize("kwargs, match", [
    ({"num_splits": 1}, "num_splits must be an integer >= 2"),
    ({"num_splits": np.int64(1)}, "num_splits must be an integer >= 2"),
    ({"weight": -1.0}, "weight must be a finite number >= 0"),
    ({"weight": float("nan")}, "weight must be a finite number >= 0"),
    ({"smoothing": 1.0}, r"smoothing must be in \[0, 1\), got 1.0"),
    ({"smoothing": float("nan")}, r"smoothing must be in \[0, 1\)"),
    ({"smoothing": 0.1, "base_loss": SoftTargetCrossEntropy()}, "give it to your base_loss"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JsdLoss(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"smoothing": None}, r"smoothing must be a number in \[0, 1\) \(0.0 for none\), got None \(NoneType\)"),
    ({"smoothing": True}, r"smoothing must be a number in \[0, 1\) .*got True \(bool\)"),
    ({"num_splits": 3.0}, r"num_splits must be an integer >= 2 .*got 3.0 \(float\)"),
    ({"num_splits": "3"}, r"num_splits must be an integer >= 2 .*got '3' \(str\)"),
    ({"num_splits": True}, r"num_splits must be an integer >= 2 .*got True \(bool\)"),
    ({"weight": "12"}, r"weight must be a finite number >= 0, got '12' \(str\)"),
    ({"weight": None}, r"weight must be a finite number >= 0, got None \(NoneType\)"),
    ({"base_loss": "ce"}, "base_loss must be callable, got str"),
])
def test_wrong_argument_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        JsdLoss(**kwargs)


def test_timm_signature_takes_none_smoothing():
    assert TimmSignatureJsd(smoothing=None).smoothing == 0.0


def test_list_of_splits_is_the_split_layout():
    """``[clean, view_1, ...]`` logits give exactly the loss (and gradients) of their split-major concatenation."""
    torch.manual_seed(1)
    splits = [(torch.randn(6, 5) * 3).requires_grad_() for _ in range(3)]
    labels = torch.randint(0, 5, (6,))
    loss = JsdLoss(num_splits=3, weight=4.0, smoothing=0.1)
    for target in (labels, labels.repeat(3)):
        as_list = loss(splits, target)
        grads = torch.autograd.grad(as_list, splits)
        joined = torch.cat([s.detach() for s in splits]).requires_grad_()
        as_tensor = loss(joined, target)
        assert torch.equal(as_list, as_tensor)
        assert torch.equal(torch.cat(grads), torch.autograd.grad(as_tensor, joined)[0])
    assert torch.equal(loss(tuple(splits), labels), as_list)


def test_bad_lists_of_splits():
    loss = JsdLoss(num_splits=3)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"num_splits=3\) got a list of 2 logits tensors; expected 3"):
        loss([torch.randn(4, 5)] * 2, y)
    with pytest.raises(ValueError, match=r"one shape \(batch, classes\), got shapes \[\(4, 5\), \(4, 5\), \(3, 5\)"):
        loss([torch.randn(4, 5), torch.randn(4, 5), torch.randn(3, 5)], y)
    with pytest.raises(TypeError, match=r"list of num_splits torch\.Tensor .*got list of ndarray"):
        loss([torch.randn(4, 5), torch.randn(4, 5), np.zeros((4, 5))], y)


def test_the_old_timm_signature_class_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match=r"TimmJsdCrossEntropy is deprecated: use timm_dynmix.JsdLoss"):
        old = TimmJsdCrossEntropy(num_splits=2, alpha=5, smoothing=None)
    assert isinstance(old, JsdLoss) and (old.num_splits, old.weight, old.smoothing) == (2, 5.0, 0.0)
    torch.manual_seed(2)
    logits, target = torch.randn(8, 3), torch.randint(0, 3, (4,))
    assert torch.equal(old(logits, target), JsdLoss(num_splits=2, weight=5.0)(logits, target))


def test_bad_batches():
    loss = JsdLoss(num_splits=3)
    with pytest.raises(ValueError, match="batch of 10 logits is not divisible by num_splits=3"):
        loss(torch.randn(10, 4), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target has 5 rows; expected 4 .* or 12"):
        loss(torch.randn(12, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits of shape .*got \(12,\)"):
        loss(torch.randn(12), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="0-d tensor"):
        loss(torch.randn(12, 4), torch.tensor(1))
    with pytest.raises(TypeError, match=r"target as a torch.Tensor .*got list; convert it with torch.as_tensor"):
        loss(torch.randn(12, 4), [0, 1, 2, 3])
    with pytest.raises(TypeError, match=r"logits as a torch.Tensor .*got list"):
        loss([[0.0] * 4] * 12, torch.zeros(4, dtype=torch.long))
