"""``JsdLoss``: base loss on the clean split + weight * Jensen-Shannon consistency of all splits.

For ``N`` splits with softmax distributions ``p_1..p_N`` (``p_1`` the clean view) and their mixture
``M = mean_k p_k``::

    loss = base_loss(logits_clean, target) + weight * mean_k KL(p_k || M)

with KL averaged over the batch (``batchmean``), as in AugMix and timm's ``JsdCrossEntropy``. Everything is
computed in log space in float32: ``log p_k`` by ``log_softmax``, ``log M`` by a max-shifted log-mean-exp and
``KL`` by ``kl_div(log_target=True)``. Unlike the clamp-then-log formulation (``log(clamp(M, 1e-7))``), the
loss and its gradients stay finite for any finite logits, including logit gaps of 1e4 in float16 and bfloat16,
and identical splits give a consistency term of exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["JsdLoss", "TimmJsdCrossEntropy", "js_divergence"]


def js_divergence(logits: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence of N distributions given by logits, in float32.

    Args:
        logits: A tensor of shape ``(N, B, C)`` or a sequence of N tensors of shape ``(B, C)``.

    Returns:
        ``mean_k KL(p_k || M)`` summed over classes and averaged over the batch (a scalar, float32).
    """
    stacked = torch.stack(list(logits)) if isinstance(logits, (list, tuple)) else logits
    logp = F.log_softmax(stacked.float(), dim=-1)
    # log M = log mean_k p_k, max-shifted so that identical splits give log M == log p exactly
    peak = logp.amax(dim=0, keepdim=True).detach()
    log_m = peak + torch.log(torch.exp(logp - peak).mean(dim=0, keepdim=True))
    n, batch = logp.shape[0], logp.shape[1]
    kl = F.kl_div(log_m.expand_as(logp), logp, reduction="sum", log_target=True)
    return kl / (n * batch)


class JsdLoss(nn.Module):
    """Jensen-Shannon consistency loss for split batches (clean + augmented views).

    Args:
        num_splits: Number of splits in a batch (clean + mixed views), >= 2.
        weight: Weight (lambda) of the consistency term; 12 as in AugMix and the DynMix paper.
        base_loss: Loss on the clean split, ``base_loss(logits, target)``; any callable, e.g. timm's
            ``SoftTargetCrossEntropy``. Defaults to cross entropy with ``smoothing``.
        smoothing: Label smoothing of the default cross entropy (must be 0 with a custom ``base_loss``).

    The input is split-major (all clean, then all view 1, ...), as :func:`timm_dynmix.collate_splits` and timm's
    ``fast_collate`` produce; the target may hold the labels once (``B``) or repeated per split (``N*B``).
    """

    def __init__(self, num_splits: int = 3, weight: float = 12.0, base_loss: Callable | None = None,
                 smoothing: float = 0.0):
        super().__init__()
        if isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 2:
            raise ValueError(f"num_splits must be an integer >= 2 (clean + at least one view), got {num_splits!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        if base_loss is not None and smoothing:
            raise ValueError("smoothing applies to the default cross entropy; give it to your base_loss instead")
        if base_loss is not None and not callable(base_loss):
            raise TypeError(f"base_loss must be callable, got {type(base_loss).__name__}")
        self.num_splits = num_splits
        self.weight = float(weight)
        self.smoothing = float(smoothing)
        self.base_loss = base_loss if base_loss is not None else nn.CrossEntropyLoss(label_smoothing=smoothing)

    def extra_repr(self) -> str:
        return f"num_splits={self.num_splits}, weight={self.weight}, smoothing={self.smoothing}"

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.ndim != 2:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"JsdLoss expects logits of shape (num_splits * batch, classes), got {shape}")
        total = output.shape[0]
        if total % self.num_splits:
            raise ValueError(f"batch of {total} logits is not divisible by num_splits={self.num_splits}")
        split = total // self.num_splits
        if target.shape[0] not in (split, total):
            raise ValueError(f"target has {target.shape[0]} rows; expected {split} (one per image) or {total} "
                             f"(repeated per split) for {total} logits in {self.num_splits} splits")
        logits = output.reshape(self.num_splits, split, output.shape[1])
        loss = self.base_loss(logits[0].float(), target[:split])
        return loss + self.weight * js_divergence(logits)


class TimmJsdCrossEntropy(JsdLoss):
    """:class:`JsdLoss` with the signature of ``timm.loss.JsdCrossEntropy``, as a drop-in replacement.

    ``TimmJsdCrossEntropy(num_splits=3, alpha=12, smoothing=0.1)`` takes timm's arguments and defaults
    (``alpha`` is the weight of the consistency term, ``smoothing`` the label smoothing of the clean-split cross
    entropy, ``None`` meaning none) and computes the same loss as timm's class, but in log space: finite where
    timm's clamp-then-log gives NaN gradients. ``timm-dynmix timm-train`` puts it in place of timm's class;
    a copy of timm's train.py can import it under timm's name instead.
    """

    def __init__(self, num_splits: int = 3, alpha: float = 12, smoothing: float | None = 0.1):
        super().__init__(num_splits=num_splits, weight=alpha, smoothing=0.0 if smoothing is None else smoothing)
