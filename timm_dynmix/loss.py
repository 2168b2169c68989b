"""``JsdLoss``: base loss on the clean split + weight * Jensen-Shannon consistency of all splits.

The one JSD loss of the package: the training loop, ``transformers.Trainer`` (:mod:`timm_dynmix.train.hf_trainer`)
and timm's ``train.py`` (:class:`timm_dynmix.integrations.timm_train.JsdCrossEntropy`, timm's signature) all
compute it with this class. It takes the logits in timm's split layout (one ``(num_splits * B, C)`` tensor,
split-major) or as a list of the splits' ``(B, C)`` logits, clean first.

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
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["JsdLoss", "TimmJsdCrossEntropy", "js_divergence", "timm_jsd_arguments"]


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
        num_splits: Number of splits in a batch (clean + mixed views), an integer >= 2 (Python or NumPy).
        weight: Weight (lambda) of the consistency term, >= 0. The default 12 is AugMix's value; the DynMix paper
            gives none.
        base_loss: Loss on the clean split, ``base_loss(logits, target)``; any callable, e.g. timm's
            ``SoftTargetCrossEntropy``. Defaults to cross entropy with ``smoothing``.
        smoothing: Label smoothing of the default cross entropy, a number in [0, 1) (must be 0 with a custom
            ``base_loss``).

    Raises:
        TypeError: If an argument has the wrong type (e.g. ``smoothing=None``: use 0.0 for no smoothing).
        ValueError: If an argument is out of range.

    The logits are either one split-major tensor (all clean, then all view 1, ...), as
    :func:`timm_dynmix.collate_splits` and timm's ``fast_collate`` produce, or a list (tuple) of ``num_splits``
    tensors of shape ``(B, classes)``, the clean split first. The target (class indices of shape ``(rows,)`` or
    soft targets ``(rows, classes)``) may hold:

    * the labels repeated per split (``num_splits * B`` rows, ``y[:B] == y[B:2B] == ...``, what those collate
      functions produce). Every call checks that repetition (one comparison on the target, so one device sync
      when it lives on an accelerator) and raises ``ValueError`` when it fails: that is how a ``num_splits``
      that does not match the batch's layout shows up even when the batch size happens to divide. A
      ``num_splits`` that divides the true number of splits (2 for a 4-split batch) leaves the targets
      consistent and cannot be detected this way;
    * the labels once per image (``B`` rows, e.g. the Hugging Face ``Trainer`` path). Nothing is compared; a
      wrong ``num_splits`` then always shows up as a row count that is neither ``B`` nor ``num_splits * B``.

    Only the clean split's targets feed the base loss.
    """

    num_splits: int
    weight: float
    smoothing: float
    base_loss: Callable[..., torch.Tensor]

    def __init__(self, num_splits: int = 3, weight: float = 12.0, base_loss: Callable[..., torch.Tensor] | None = None,
                 smoothing: float = 0.0):
        super().__init__()
        if isinstance(num_splits, bool) or not isinstance(num_splits, numbers.Integral):
            raise TypeError(f"num_splits must be an integer >= 2 (clean + at least one view), got {num_splits!r} "
                            f"({type(num_splits).__name__})")
        if num_splits < 2:
            raise ValueError(f"num_splits must be an integer >= 2 (clean + at least one view), got {num_splits!r}")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise TypeError(f"weight must be a finite number >= 0, got {weight!r} ({type(weight).__name__})")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
        if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real):
            raise TypeError(f"smoothing must be a number in [0, 1) (0.0 for none), got {smoothing!r} "
                            f"({type(smoothing).__name__})")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        if base_loss is not None and smoothing:
            raise ValueError("smoothing applies to the default cross entropy; give it to your base_loss instead")
        if base_loss is not None and not callable(base_loss):
            raise TypeError(f"base_loss must be callable, got {type(base_loss).__name__}")
        self.num_splits = int(num_splits)
        self.weight = float(weight)
        self.smoothing = float(smoothing)
        self.base_loss = base_loss if base_loss is not None else nn.CrossEntropyLoss(label_smoothing=self.smoothing)

    def extra_repr(self) -> str:
        return f"num_splits={self.num_splits}, weight={self.weight}, smoothing={self.smoothing}"

    def forward(self, output: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Base loss on the clean split + ``weight`` * JS divergence of all splits.

        Args:
            output: Logits of shape ``(num_splits * B, classes)``, split-major (timm's layout), or a list of
                ``num_splits`` tensors of shape ``(B, classes)``, clean first.
            target: Class indices ``(rows,)`` or soft targets ``(rows, classes)``, with ``rows`` either
                ``num_splits * B`` (repeated per split) or ``B`` (once per image).

        Returns:
            The scalar loss (float32).

        Raises:
            TypeError: If ``output`` or ``target`` is not a tensor (or a list of tensors for ``output``).
            ValueError: If the shapes do not fit ``num_splits``, or repeated targets differ between splits.
        """
        if isinstance(output, (list, tuple)):
            output = self._concat_splits(output)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"JsdLoss expects logits as a torch.Tensor of shape (num_splits * batch, classes) or a "
                            f"list of num_splits tensors (batch, classes), got {type(output).__name__}")
        if output.ndim != 2:
            raise ValueError(f"JsdLoss expects logits of shape (num_splits * batch, classes), got "
                             f"{tuple(output.shape)}")
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"JsdLoss expects the target as a torch.Tensor (class indices or soft targets), got "
                            f"{type(target).__name__}; convert it with torch.as_tensor")
        if target.ndim == 0:
            raise ValueError("JsdLoss expects a target with one row per image or per logit row, got a 0-d tensor")
        n = self.num_splits
        total = output.shape[0]
        if total % n:
            raise ValueError(f"batch of {total} logits is not divisible by num_splits={n}")
        split = total // n
        rows = target.shape[0]
        if rows not in (split, total):
            raise ValueError(f"target has {rows} rows; expected {split} (one per image) or {total} "
                             f"(repeated per split) for {total} logits in {n} splits; "
                             f"does num_splits={n} match the number of views per image?")
        if rows == total and not torch.equal(target[:-split], target[split:]):
            raise ValueError(f"target is not repeated per split for num_splits={n}: with {total} logits the "
                             f"layout must be split-major (all clean images, then all view 1, ...) with "
                             f"target[:{split}] == target[{split}:{2 * split}] == ...; check that num_splits={n} "
                             f"is the number of views per image (clean + augmented), or pass the targets once "
                             f"({split} rows)")
        logits = output.reshape(n, split, output.shape[1])
        loss = self.base_loss(logits[0].float(), target[:split])
        return loss + self.weight * js_divergence(logits)

    def _concat_splits(self, splits: Sequence[torch.Tensor]) -> torch.Tensor:
        """The split-major ``(num_splits * B, classes)`` tensor of a list of ``num_splits`` ``(B, classes)`` logits."""
        bad = sorted({type(t).__name__ for t in splits if not isinstance(t, torch.Tensor)})
        if bad:
            raise TypeError(f"JsdLoss expects logits as a torch.Tensor of shape (num_splits * batch, classes) or a "
                            f"list of num_splits torch.Tensor of shape (batch, classes), got "
                            f"{type(splits).__name__} of {', '.join(bad)}")
        if len(splits) != self.num_splits:
            raise ValueError(f"JsdLoss(num_splits={self.num_splits}) got a list of {len(splits)} logits tensors; "
                             f"expected {self.num_splits} (clean first, then each view)")
        shapes = {tuple(t.shape) for t in splits}
        if len(shapes) != 1 or splits[0].ndim != 2:
            raise ValueError(f"JsdLoss expects a list of logits of one shape (batch, classes), got shapes "
                             f"{[tuple(t.shape) for t in splits]}")
        return torch.cat(list(splits))


def timm_jsd_arguments(num_splits: int = 3, alpha: float = 12, smoothing: float | None = 0.1) -> dict[str, Any]:
    """:class:`JsdLoss` arguments for timm's ``JsdCrossEntropy(num_splits, alpha, smoothing)`` (its defaults):
    ``alpha`` is the weight, ``smoothing=None`` means 0."""
    return {"num_splits": num_splits, "weight": alpha, "smoothing": 0.0 if smoothing is None else smoothing}


class TimmJsdCrossEntropy(JsdLoss):
    """Deprecated: :class:`JsdLoss` with the signature of ``timm.loss.JsdCrossEntropy``.

    ``TimmJsdCrossEntropy(num_splits, alpha, smoothing)`` is ``JsdLoss(num_splits, weight=alpha,
    smoothing=smoothing or 0.0)``. Use :class:`JsdLoss`, or in a copy of timm's ``train.py``
    ``from timm_dynmix.integrations.timm_train import JsdCrossEntropy`` (timm's signature, what
    ``timm-dynmix timm-train`` puts in place of timm's class). Instantiating it warns (``DeprecationWarning``).
    """

    def __init__(self, num_splits: int = 3, alpha: float = 12, smoothing: float | None = 0.1):
        warnings.warn("timm_dynmix.TimmJsdCrossEntropy is deprecated: use timm_dynmix.JsdLoss(num_splits, "
                      "weight=alpha, smoothing=smoothing or 0.0), or timm_dynmix.integrations.timm_train."
                      "JsdCrossEntropy for timm's signature", DeprecationWarning, stacklevel=2)
        super().__init__(**timm_jsd_arguments(num_splits, alpha, smoothing))
