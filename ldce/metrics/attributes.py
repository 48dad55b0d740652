"""Attribute metrics of face counterfactuals with an attribute oracle: MNAC and CD (as in ACE / STEEX).

Both take the oracle's logits ``(B, A)`` on originals and counterfactuals (A = 40 for CelebA);
an attribute is present when its logit is > 0 (the oracle's probability > 0.5). The oracle itself
is built by :func:`ldce.metrics.networks.celebahq_oracle`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics import Metric

from ldce.metrics.pairs import MeanOfPairs


class MNAC(MeanOfPairs):
    """Mean number of attributes changed: ``(1/N) Σ_i Σ_{a ≠ q} [d_a(x_i) ≠ d_a(x'_i)]``.

    ``d_a = [logit_a > 0]`` are the oracle's decisions and ``q`` the queried attribute, which is not
    counted; with ``query=None`` every attribute counts (ACE's scripts).
    """

    higher_is_better = False

    def __init__(self, query: int | None = None) -> None:
        super().__init__()
        self.query = query

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: oracle logits ``(B, A)``."""
        changed = (original > 0) != (counterfactual > 0)
        if self.query is not None:
            changed[:, self.query] = False
        self._add(changed.double().sum(1))


def pearson(sum_x: Tensor, sum_y: Tensor, sum_xx: Tensor, sum_yy: Tensor, sum_xy: Tensor, n: Tensor) -> Tensor:
    """Pearson correlation from sums: ``(nΣxy − ΣxΣy) / √((nΣx² − (Σx)²)(nΣy² − (Σy)²))``; 0 where undefined."""
    numerator = n * sum_xy - sum_x * sum_y
    denominator = ((n * sum_xx - sum_x**2) * (n * sum_yy - sum_y**2)).sqrt()
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))


class CD(Metric):
    """Correlation difference: ``CD = Σ_a |ρ_a − ρ'_a|`` over all A attributes.

    ``ρ_a``: correlation of attribute a with the queried attribute q in the training labels
    (:func:`train_correlations`); ``ρ'_a = corr_i(δ_a, δ_q)`` with ``δ_a = d_a(x'_i) − d_a(x_i)`` ∈
    {−1, 0, 1} the change of the oracle's decision over the counterfactual pairs (0 where a change
    never varies, as ACE's ``compute_CD.py``). State: the sums of ``δ``, ``δ²`` and ``δ·δ_q``. Undefined
    (NaN) without pairs.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, query: int, correlations: Tensor) -> None:
        super().__init__()
        self.query = query
        self.register_buffer("correlations", correlations.double().flatten(), persistent=False)
        attributes = len(self.correlations)
        for name in ("sum", "sum_sq", "sum_with_query"):
            self.add_state(name, torch.zeros(attributes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: oracle logits ``(B, A)``."""
        delta = (counterfactual > 0).double() - (original > 0).double()
        self.sum += delta.sum(0)
        self.sum_sq += delta.square().sum(0)
        self.sum_with_query += (delta * delta[:, self.query : self.query + 1]).sum(0)
        self.count += len(delta)

    def compute(self) -> Tensor:
        """``CD`` (0-dim float64); NaN without pairs (nothing changed, nothing to correlate)."""
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        q = self.query
        ours = pearson(self.sum, self.sum[q], self.sum_sq, self.sum_sq[q], self.sum_with_query, self.count)
        return (self.correlations.to(ours) - ours).abs().sum()


def read_attribute_labels(path: str | Path) -> Tensor:
    """Attribute labels ``(N, A)`` of a CelebA-style file: rows ``<image> v_1 … v_A`` with v ∈ {−1, 0, 1}.

    Reads ``list_attr_celeba.txt`` / ``CelebAMask-HQ-attribute-anno.txt`` (count line, names line,
    space-separated rows) and CSV exports (header, comma-separated rows) alike: every line whose
    fields after the first are all integers is a row.
    """
    rows = [row for line in Path(path).read_text().splitlines() if (row := _label_row(line)) is not None]
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: no attribute rows of equal length (expected '<image> v_1 … v_A' per line)")
    return torch.tensor(rows, dtype=torch.float64)


def _label_row(line: str) -> list[int] | None:
    """The integers after the first field of a line, or ``None`` for a header or count line."""
    fields = line.replace(",", " ").split()
    if len(fields) < 3 or not all(v.lstrip("-").isdigit() for v in fields[1:]):
        return None
    return [int(v) for v in fields[1:]]


def train_correlations(labels: Tensor, query: int) -> Tensor:
    """``ρ_a = corr(y_a, y_q)`` over the rows of training labels ``(N, A)``; ``(A,)``, 0 for constant columns."""
    n = torch.tensor(float(len(labels)), dtype=torch.float64)
    y = labels[:, query]
    sums = (labels.sum(0), y.sum(), labels.square().sum(0), y.square().sum(), (labels * y[:, None]).sum(0))
    return pearson(*sums, n)


def read_correlations(path: str | Path) -> Tensor:
    """Precomputed ``ρ`` from a JSON file: a list of A numbers. Returns ``(A,)`` float64."""
    values = json.loads(Path(path).read_text())
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(f"{path}: expected a JSON list of numbers, one correlation per attribute")
    return torch.tensor(values, dtype=torch.float64)
