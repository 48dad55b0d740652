"""The pixel-space composite of a region-constrained counterfactual: the smallest part of the change that
convinces the classifier.

Each pixel's claim to change is ``s = S ⊙ mean₃ₓ₃(maxᶜ |x_cf − x|)`` (``S`` the region source's score,
upsampled; 0: never changes). For ``k = 0 … K`` (``K = growth``) and the samples not yet settled:

    q_k = q_0^(1 − k/K)                                      q_0 = ``composite_share``: a ladder up to 1
    M_k = box_f(top q_k of the pixels with s > 0) ⊙ L       (B, 1, H, W); L: a given region's pixels, else 1
    x_k = M_k ⊙ x_cf + (1 − M_k) ⊙ x                         pixels where M_k = 0 are the original's, exactly
    settle the samples with p(y_t | x_k) ≥ ``confidence`` (argmax the target) with x_k

(``q_K = 1``, the whole region, for ``K ≥ 1``; ``K = 0`` has the one rung ``q_0``.) A sample that never
reaches ``confidence`` takes the largest ``x_k`` the classifier calls the target, so more confidence
never means a smaller change. Failing that, it keeps the uncomposited ``x_cf`` (growth −1) — unless the
region is a hard ``limit`` (``given``, ``segmentation``): then the whole region's composite (``q = 1``,
reported as growth ``K``), whatever the classifier says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldce.classifiers.logits import predict, target_probability

UNCOMPOSITED = -1


@dataclass(frozen=True)
class Composite:
    """images: the final images ``(B, 3, H, W)``; masks: the ``M`` each used ``(B, 1, H, W)`` (all ones
    where uncomposited); growth: int64 ``(B,)``, the ``k`` used, or −1 where uncomposited; confident:
    bool ``(B,)``, whether the classifier gave the target ``p ≥ confidence`` on the image chosen (false
    for the fallbacks; ``None`` without a composite)."""

    images: Tensor
    masks: Tensor
    growth: Tensor
    confident: Tensor | None = None


def change_score(images: Tensor, counterfactuals: Tensor, source_score: Tensor) -> Tensor:
    """``s = S ⊙ mean₃ₓ₃(maxᶜ |x_cf − x|)``: ``(B, 3, H, W)`` × 2, ``S`` ``(B, 1, H, W)`` ≥ 0 → ``(B, 1, H, W)``."""
    change = (counterfactuals - images).abs().amax(1, keepdim=True)
    return source_score * F.avg_pool2d(change, 3, stride=1, padding=1, count_include_pad=False)


def top_share_mask(score: Tensor, share: float, feather: int) -> Tensor:
    """``box_f`` of the top ``share`` of the pixels with ``score > 0`` ``(B, 1, H, W)``, per sample, in [0, 1]."""
    flat = score.flatten(1)
    count = (flat > 0).sum(1, keepdim=True).clamp_min(1)
    ranks = flat.argsort(1, descending=True).argsort(1)
    mask = ((ranks < (share * count).ceil()) & (flat > 0)).float().view_as(score)
    if feather == 0:
        return mask
    return F.avg_pool2d(mask, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False).clamp(0, 1)


def ladder(share: float, growth: int) -> list[float]:
    """``q_k = share^(1 − k/K)`` for ``k = 0 … K``: from ``share`` up to 1 (``[share]`` for ``K = 0``)."""
    return [share ** (1 - k / growth) for k in range(growth + 1)] if growth else [share]


def _rung(
    images: Tensor, counterfactuals: Tensor, score: Tensor, share: float, feather: int, limit: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(M, x)`` of one share ``q``: the mask ``(B, 1, H, W)`` and its composite ``(B, 3, H, W)``."""
    mask = top_share_mask(score, share, feather) * (1.0 if limit is None else limit.float())
    return mask, mask * counterfactuals + (1 - mask) * images


def _convinced(logits: Tensor, targets: Tensor, confidence: float) -> Tensor:
    """bool ``(B,)``: the classifier calls the target, with ``p(y_t) ≥ confidence``."""
    return (predict(logits) == targets) & (target_probability(logits, targets) >= confidence)


@torch.no_grad()
def composite(
    images: Tensor,
    counterfactuals: Tensor,
    score: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    feather: int,
    share: float,
    growth: int,
    confidence: float,
    limit: Tensor | None = None,
) -> Composite:
    """The composite of the module docstring: images / counterfactuals ``(B, 3, H, W)`` in [0, 1], score
    ``(B, 1, H, W)`` (:func:`change_score`), targets int64 ``(B,)``; limit: bool ``(B, 1, H, W)``, the
    pixels a given region allows (``M`` is cut to them, and the uncomposited counterfactual never kept)."""
    final, masks = counterfactuals.clone(), torch.ones_like(images[:, :1])
    used = torch.full_like(targets, UNCOMPOSITED)
    confident = torch.zeros_like(targets, dtype=torch.bool)
    largest_flip: dict[int, tuple[int, Tensor, Tensor]] = {}
    pending = torch.ones_like(targets, dtype=torch.bool)
    for k, q in enumerate(ladder(share, growth)):
        mask, candidate = _rung(images, counterfactuals, score, q, feather, limit)
        logits = classifier(candidate)
        for i in (pending & (predict(logits) == targets)).nonzero().squeeze(1).tolist():
            largest_flip[i] = (k, candidate[i], mask[i])
        settled = pending & _convinced(logits, targets, confidence)
        confident |= settled
        final[settled], masks[settled], used[settled] = candidate[settled], mask[settled], k
        pending &= ~settled
        if not pending.any():
            break
    for i in pending.nonzero().squeeze(1).tolist():
        if i in largest_flip:
            used[i], final[i], masks[i] = largest_flip[i]
            pending[i] = False
    if limit is not None and pending.any():  # a hard limit: the whole region when nothing flips
        whole, candidate = _rung(images, counterfactuals, score, 1.0, feather, limit)
        final[pending], masks[pending], used[pending] = candidate[pending], whole[pending], growth
        # with growth 0 the whole region was no rung: it may still convince
        confident[pending] = _convinced(classifier(candidate[pending]), targets[pending], confidence)
    return Composite(final, masks, used, confident)
