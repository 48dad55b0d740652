"""Logits into the quantities the sampler and the metrics need, for multi-class logits ``(B, K)`` and
binary-attribute logits ``(B,)`` alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def is_binary(logits: Tensor) -> bool:
    """True for one binary-attribute logit per sample (``(B,)``), False for ``(B, K)``."""
    return logits.ndim == 1


def target_log_likelihood(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample ``log p(y_t | x)``: ``log_softmax(logits)[b, y_b]``, or ``−BCEWithLogits(l_b, y_b)``.

    logits: ``(B, K)`` or ``(B,)``; targets: ``(B,)`` class indices (0/1 for binary). Returns ``(B,)``.
    """
    if is_binary(logits):
        return -F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return logits.log_softmax(dim=-1).gather(1, targets.long()[:, None]).squeeze(1)


def target_probability(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample ``p(y_t | x)``: softmax at the target, or ``σ(l)`` / ``1 − σ(l)``. Returns ``(B,)``."""
    if is_binary(logits):
        return torch.where(targets.bool(), logits.sigmoid(), (-logits).sigmoid())
    return logits.softmax(dim=-1).gather(1, targets.long()[:, None]).squeeze(1)


def predict(logits: Tensor) -> Tensor:
    """Predicted class, int64 ``(B,)``: argmax, or ``logit > 0`` for binary logits."""
    return (logits > 0).long() if is_binary(logits) else logits.argmax(dim=-1)


def confidence(logits: Tensor) -> Tensor:
    """Probability of the predicted class, ``(B,)``."""
    return target_probability(logits, predict(logits))
