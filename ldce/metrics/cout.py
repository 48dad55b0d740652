"""COUT, the counterfactual transition score (Khorram & Fuxin 2022, as evaluated by ACE and LDCE)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ldce.classifiers import is_binary, predict, target_probability
from ldce.images import to_uint8_tensor
from ldce.metrics.pairs import MeanOfPairs

COUT_STEPS = 50


def reveal_counts(num_pixels: int) -> list[int]:
    """Pixels revealed at each point of the curve: ``n_k = min(k·s, HW)``, ``s = max(1, HW // 50)``, k = 0 … ⌈HW/s⌉."""
    step = max(1, num_pixels // COUT_STEPS)
    return [min(k * step, num_pixels) for k in range(-(-num_pixels // step) + 1)]


def reveal_ranks(original: Tensor, counterfactual: Tensor) -> Tensor:
    """Rank of every pixel in the reveal order, ``(B, H·W)`` int64 (0 = revealed first).

    The mask ``m = Σ_channels |k' − k|`` is computed on the exact 8-bit values ``k = round(255·x)`` of
    the images as saved (the definition min–max normalises it per image, which keeps the order) and
    sorted descending; pixels with equal ``m`` keep the raster order (stable sort), whatever rounding
    their float values carry.
    """
    mask = (to_uint8_tensor(counterfactual).int() - to_uint8_tensor(original).int()).abs().sum(1).flatten(1)
    order = torch.argsort(mask, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def class_probabilities(
    logits: Tensor, source: Tensor, target: Tensor, source_prediction: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(p_s, p_t)``, each ``(B,)``, from logits ``(B, K)`` or binary logits ``(B,)``.

    Multi-class: softmax at the source and at the target class. Binary: ``p_s = σ(±l)`` signed by
    the original's predicted class ``source_prediction`` and ``p_t = 1 − p_s`` (source and target
    are then ignored).
    """
    if is_binary(logits):
        p_source = target_probability(logits, source_prediction)
        return p_source, 1 - p_source
    return target_probability(logits, source), target_probability(logits, target)


def trapezoid(values: Tensor, positions: Tensor) -> Tensor:
    """``∫ v dx`` by the trapezoid rule; values ``(K+1, B)`` at positions ``(K+1,)``. Returns ``(B,)``."""
    widths = (positions[1:] - positions[:-1])[:, None]
    return (widths * (values[1:] + values[:-1]) / 2).sum(0)


@torch.no_grad()
def cout_scores(
    classifier: nn.Module, original: Tensor, counterfactual: Tensor, source: Tensor, target: Tensor
) -> Tensor:
    """Per-pair ``COUT = AUC(p_t) − AUC(p_s)`` in [−1, 1], ``(B,)``.

    original, counterfactual: ``(B, 3, H, W)`` in [0, 1]; source, target: ``(B,)``. At point k the
    classifier sees ``x'·M_k + x·(1 − M_k)`` where ``M_k`` holds the ``n_k`` first pixels of the
    reveal order (:func:`reveal_counts`, :func:`reveal_ranks`); the curves ``p_s``, ``p_t`` are
    integrated over ``n_k / HW`` ∈ [0, 1] with the trapezoid rule.
    """
    ranks = reveal_ranks(original, counterfactual)
    height, width = original.shape[-2:]
    counts = reveal_counts(height * width)
    p_source, p_target = [], []
    for n in counts:
        revealed = (ranks < n).view(-1, 1, height, width).to(original.dtype)
        logits = classifier(counterfactual * revealed + original * (1 - revealed))
        if n == 0:  # counts[0] = 0: nothing revealed, the input is exactly the original
            source_prediction = predict(logits)
        p_s, p_t = class_probabilities(logits, source, target, source_prediction)
        p_source.append(p_s.double())
        p_target.append(p_t.double())
    positions = torch.tensor(counts, dtype=torch.float64, device=original.device) / (height * width)
    return trapezoid(torch.stack(p_target), positions) - trapezoid(torch.stack(p_source), positions)


class COUT(MeanOfPairs):
    """Mean counterfactual transition score over pairs (:func:`cout_scores`) of ``classifier``.

    Multi-class: ``p_s`` and ``p_t`` are the probabilities of the source class (the sample's label)
    and of the target; binary: see :func:`class_probabilities`.
    """

    higher_is_better = True

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def update(self, original: Tensor, counterfactual: Tensor, source: Tensor, target: Tensor) -> None:
        """original, counterfactual: ``(B, 3, H, W)`` in [0, 1]; source, target: ``(B,)`` class indices."""
        self._add(
            cout_scores(
                self.classifier, original, counterfactual, source.to(original.device), target.to(original.device)
            )
        )
