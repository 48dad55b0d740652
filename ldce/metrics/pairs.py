"""Means over pairs: flip rate, closeness (L1/L2 per image and per pixel), cosine similarity of embeddings.

Every metric here keeps two float64 sum states, ``total`` (Σ of a per-pair value) and ``count``
(number of pairs), reduced by summation across ranks: the result is the same for any world size,
and a rank without pairs contributes zeros to the sums. ``compute`` returns ``total / count``, NaN
for no pairs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from ldce.classifiers import predict


class MeanOfPairs(Metric):
    """``(1/N) Σ_i v_i`` over all pairs of all ranks; subclasses turn a batch into the values ``v``."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, values: Tensor) -> None:
        """values: ``(B,)`` per-pair values of one batch."""
        self.total += values.detach().double().sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        return self.total / self.count if self.count > 0 else torch.tensor(float("nan"), dtype=torch.float64)


class FlipRate(MeanOfPairs):
    """Share of counterfactuals the classifier assigns to their target, over the pairs whose original
    it does not already assign to it: ``FR = Σ_i [ŷ(x'_i) = t_i]·[ŷ(x_i) ≠ t_i] / Σ_i [ŷ(x_i) ≠ t_i]``.

    ``ŷ`` is ``argmax`` of logits ``(B, K)``, or ``[logit > 0]`` for one binary logit per pair ``(B,)``
    (``ldce.classifiers.predict``). A pair already at its target has nothing to flip.
    """

    higher_is_better = True

    def update(self, original_logits: Tensor, logits: Tensor, target: Tensor) -> None:
        """original_logits / logits: the classifier on the originals / counterfactuals, ``(B, K)`` or
        ``(B,)``; target: ``(B,)``."""
        target = target.to(logits.device)
        open_ = predict(original_logits) != target
        self._add((predict(logits)[open_] == target[open_]).double())


class Closeness(MeanOfPairs):
    """Mean distance between original ``x`` and counterfactual ``x'``, ``Δ = x' − x`` of shape ``(C, H, W)``.

    per image: ``L1 = Σ |Δ|``, ``L2 = √(Σ Δ²)`` (as ``l1``/``l2`` in the records);
    per pixel: ``L1 / (C·H·W)`` (mean absolute difference) and ``L2 / √(C·H·W)`` (root mean square).
    """

    higher_is_better = False

    def __init__(self, norm: Literal[1, 2], per: Literal["image", "pixel"]) -> None:
        super().__init__()
        if norm not in (1, 2) or per not in ("image", "pixel"):
            raise ValueError(f"closeness: norm must be 1 or 2 and per 'image' or 'pixel', got {norm!r}, {per!r}")
        self.norm, self.per = norm, per

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: ``(B, C, H, W)`` in [0, 1]."""
        diff = (counterfactual.double() - original.double()).flatten(1)
        distance = diff.abs().sum(1) if self.norm == 1 else diff.square().sum(1).sqrt()
        if self.per == "pixel":
            distance = distance / (diff.shape[1] if self.norm == 1 else diff.shape[1] ** 0.5)
        self._add(distance)


class CosineSimilarity(MeanOfPairs):
    """Agreement of embeddings ``e = f(x)``, ``e' = f(x')`` with ``cos = e·e' / (‖e‖ ‖e'‖)``.

    Without ``threshold``: the mean cosine similarity (S3 with SimSiam projector embeddings, FS with
    VGGFace2 face embeddings). With it: the share of pairs whose ``cos > threshold`` (FVA: 0.5).
    """

    higher_is_better = True

    def __init__(self, threshold: float | None = None) -> None:
        super().__init__()
        self.threshold = threshold

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: embeddings ``(B, D)`` (or ``(B, D, 1, 1)``) of the two images."""
        cosine = F.cosine_similarity(original.flatten(1).double(), counterfactual.flatten(1).double(), dim=1)
        self._add(cosine if self.threshold is None else (cosine > self.threshold).double())
