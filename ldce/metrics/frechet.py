"""FID and sFID between originals and counterfactuals, from features of any extractor.

Both metrics take features, not images: the caller applies the extractor (torch-fidelity's
Inception, or any module with ``num_features``, see :mod:`ldce.metrics.features`). FID keeps sums
(exact for any world size); sFID keeps every pair's features, its class and a hash of its key,
because its split needs all pairs of all ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

HASH_CHUNKS, HASH_BITS = 3, 20  # a 60-bit key hash in float32-exact chunks (cat states are float32)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """``d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` between Gaussians ``N(μ₁, Σ₁)``, ``N(μ₂, Σ₂)``.

    mu: ``(D,)``; sigma: ``(D, D)``. ``Tr (Σ₁Σ₂)^½ = Σ_k √λ_k`` over the eigenvalues of ``Σ₁Σ₂`` (real
    and ≥ 0 in exact arithmetic; the real part of the complex root absorbs round-off).
    """
    root_trace = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * root_trace


def gaussian(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)``, in float64."""
    features = features.double()
    return features.mean(0), torch.cov(features.T, correction=1).reshape(features.shape[1], features.shape[1])


def fid_of(real: Tensor, fake: Tensor) -> Tensor:
    """FID between feature sets ``(N, D)`` and ``(M, D)``; NaN when either has fewer than 2 rows."""
    if len(real) < 2 or len(fake) < 2:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return frechet_distance(*gaussian(real), *gaussian(fake))


class FID(Metric):
    """Fréchet distance between the features of all originals and of all counterfactuals.

    ``FID = ‖μ_x − μ_x'‖² + Tr(Σ_x + Σ_x' − 2 (Σ_x Σ_x')^½)`` with the mean and unbiased covariance of
    each set computed from synced sums ``Σ f``, ``Σ f fᵀ`` and ``N`` (float64). NaN below 2 pairs.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def full_rank_pairs(self) -> int:
        """Pairs from which each side's covariance can have full rank ``D``."""
        return self.num_features + 1

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: features ``(B, D)`` of the pairs."""
        for side, features in (("real", original), ("fake", counterfactual)):
            features = features.detach().double().flatten(1)
            setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + features.sum(0))
            setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + features.T @ features)
        self.count += len(original)

    def compute(self) -> Tensor:
        n = self.count
        if n < 2:
            return torch.tensor(float("nan"), dtype=torch.float64)
        stats = []
        for side in ("real", "fake"):
            mean = getattr(self, f"{side}_sum") / n
            stats += [mean, (getattr(self, f"{side}_outer") - n * torch.outer(mean, mean)) / (n - 1)]
        return frechet_distance(*stats)


def key_hash(keys: Sequence[str]) -> Tensor:
    """The first 60 bits of ``SHA-256(key)`` per key as ``(B, 3)`` float32 integers of 20 bits (exact)."""
    rows = []
    for key in keys:
        value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> (64 - HASH_CHUNKS * HASH_BITS)
        rows.append(
            [(value >> (HASH_BITS * (HASH_CHUNKS - 1 - i))) & ((1 << HASH_BITS) - 1) for i in range(HASH_CHUNKS)]
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(keys), HASH_CHUNKS)


def split_halves(classes: Tensor, hashes: Tensor) -> Tensor:
    """Half A of the pairs, bool ``(N,)``: pairs sorted by class, then by key hash; every other one.

    classes: ``(N,)``; hashes: ``(N, 3)`` from :func:`key_hash`. Positions 0, 2, 4, … of that order
    form half A, the others half B: the halves differ in size by at most one, and so does each
    class's share of them (⌈n/2⌉ : ⌊n/2⌋ or the reverse). The order depends on the keys only, never
    on batches or ranks.
    """
    chunks = hashes.long()
    order_key = (chunks[:, 0] << (2 * HASH_BITS)) | (chunks[:, 1] << HASH_BITS) | chunks[:, 2]
    order = torch.argsort(order_key, stable=True)
    order = order[torch.argsort(classes[order], stable=True)]
    half_a = torch.zeros(len(order), dtype=torch.bool)
    half_a[order] = torch.arange(len(order)) % 2 == 0
    return half_a


class SplitFID(Metric):
    """sFID: ``½ [FID(x of A, x' of B) + FID(x of B, x' of A)]`` over two halves A, B of the pairs.

    The halves come from :func:`split_halves` (class-balanced by ``classes``, e.g. the source
    labels; give one class for all when unknown), so no pair is compared with its own counterfactual.
    State: one float32 row ``[class, hash₀, hash₁, hash₂, f(x), f(x')]`` per pair, concatenated
    across ranks; memory ``8·D`` bytes per pair.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.add_state("rows", [], dist_reduce_fx="cat")

    @property
    def full_rank_pairs(self) -> int:
        """Pairs from which each half's covariance can have full rank ``D``."""
        return 2 * (self.num_features + 1)

    def update(self, original: Tensor, counterfactual: Tensor, classes: Tensor, keys: Sequence[str]) -> None:
        """original, counterfactual: features ``(B, D)``; classes: ``(B,)``; keys: B sample keys."""
        device = original.device
        parts = [
            classes.float().to(device)[:, None],
            key_hash(keys).to(device),
            original.detach().float().flatten(1),
            counterfactual.detach().float().flatten(1),
        ]
        self.rows.append(torch.cat(parts, 1).flatten())

    def compute(self) -> Tensor:
        rows = torch.cat(self.rows) if isinstance(self.rows, list) and self.rows else self.rows
        if not isinstance(rows, Tensor) or rows.numel() == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        d = self.num_features
        rows = rows.reshape(-1, 1 + HASH_CHUNKS + 2 * d).cpu()
        real, fake = rows[:, 1 + HASH_CHUNKS : 1 + HASH_CHUNKS + d], rows[:, 1 + HASH_CHUNKS + d :]
        a = split_halves(rows[:, 0].long(), rows[:, 1 : 1 + HASH_CHUNKS])
        return (fid_of(real[a], fake[~a]) + fid_of(real[~a], fake[a])) / 2
