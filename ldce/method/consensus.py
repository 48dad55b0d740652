"""Consensus guidance: let through only the classifier score the diffusion model agrees with.

The *implicit classifier* of a conditional diffusion model is ``d = e_c − e_u``; the classifier
score is ``s_c = −√(1 − ā_t) · ∂L_c/∂z``. Both are viewed as one vector per region of the latent
(a ``chunk_size × chunk_size`` block of latent pixels, all channels) and compared by angle
``φ = arccos(⟨d, s_c⟩ / (|d| |s_c|))``. Where ``φ > θmax`` the two disagree and the classifier
score is either dropped (``zero_binning``) or turned by ``θmax`` towards ``d`` (``binning``);
``default`` makes that decision once for the whole latent of a sample.

All functions are pure: inputs are never modified, and zero, parallel or antiparallel vectors give
finite results.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

ConeProjection = Literal["zero_binning", "binning", "default"]
CONE_PROJECTIONS: tuple[str, ...] = get_args(ConeProjection)

_TINY = 1e-22


def _norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last axis, kept: ``(..., D) → (..., 1)``."""
    return torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def cone_angle(implicit: Tensor, score: Tensor) -> Tensor:
    """Angle in radians between vectors on the last axis: ``(..., D) × (..., D) → (...)``.

    ``φ = arccos(⟨d, s⟩ / (|d| |s|))``; a zero vector on either side gives ``π/2``.
    """
    cosine = (implicit * score).sum(-1) / (_norm(implicit) * _norm(score)).squeeze(-1).clamp_min(_TINY)
    return torch.arccos(cosine.clamp(-1.0, 1.0))


def turn_towards(score: Tensor, implicit: Tensor, max_angle_deg: float) -> Tensor:
    """Turn ``score`` by ``θmax`` towards ``implicit`` in the plane they span: ``(..., D) → (..., D)``.

    ``s' = s + |s| · tan(θmax) · n`` with ``n`` the unit vector of ``d − (⟨d, s⟩ / |s|²) s``, the part
    of ``d`` orthogonal to ``s``. Then ``∠(s, s') = θmax`` and ``|s'| = |s| / cos θmax``. Where ``d``
    has no orthogonal part (parallel, antiparallel or zero) ``n = 0`` and ``s`` is returned as is.
    """
    score_sq = (score * score).sum(-1, keepdim=True)
    along = (implicit * score).sum(-1, keepdim=True) / score_sq.clamp_min(_TINY)
    orthogonal = implicit - along * score
    orthogonal_norm = _norm(orthogonal)
    unit = torch.where(orthogonal_norm > _TINY, orthogonal / orthogonal_norm.clamp_min(_TINY), 0.0)
    return score + _norm(score) * math.tan(math.radians(max_angle_deg)) * unit


def _to_chunks(v: Tensor, chunk_size: int) -> Tensor:
    """``(B, C, H, W) → (B, H/k, W/k, C·k·k)``: one vector per ``k × k`` block of latent pixels."""
    b, c, h, w = v.shape
    k = chunk_size
    if h % k or w % k:
        raise ValueError(f"chunk_size {k} must divide the latent size {h}×{w}")
    return v.reshape(b, c, h // k, k, w // k, k).permute(0, 2, 4, 1, 3, 5).reshape(b, h // k, w // k, c * k * k)


def _from_chunks(v: Tensor, shape: torch.Size, chunk_size: int) -> Tensor:
    """Inverse of :func:`_to_chunks`: ``(B, H/k, W/k, C·k·k) → (B, C, H, W)``."""
    b, c, h, w = shape
    k = chunk_size
    return v.reshape(b, h // k, w // k, c, k, k).permute(0, 3, 1, 4, 2, 5).reshape(shape)


def _project(implicit: Tensor, score: Tensor, max_angle_deg: float, zero: bool) -> tuple[Tensor, Tensor]:
    """Project vectors on the last axis; returns ``(projected (..., D), consensus (...) bool)``."""
    consensus = cone_angle(implicit, score) <= math.radians(max_angle_deg)
    outside = torch.zeros_like(score) if zero else turn_towards(score, implicit, max_angle_deg)
    return torch.where(consensus[..., None], score, outside), consensus


def consensus_guidance(
    implicit: Tensor,
    classifier_score: Tensor,
    max_angle_deg: float,
    mode: ConeProjection = "zero_binning",
    chunk_size: int = 1,
) -> tuple[Tensor, Tensor]:
    """Filter the classifier score by consensus with the implicit classifier.

    Args:
        implicit: ``d = e_c − e_u``, shape ``(B, C, H, W)``.
        classifier_score: ``s_c = −√(1 − ā_t) · g_c``, shape ``(B, C, H, W)``.
        max_angle_deg: ``θmax`` in degrees, in (0, 180].
        mode: ``zero_binning`` sets ``s_c = 0`` in each region where ``φ > θmax``; ``binning``
            replaces it there by :func:`turn_towards`; ``default`` applies the ``binning`` rule to
            the whole flattened latent of each sample at once (``chunk_size`` is ignored).
        chunk_size: side ``k`` of the square block of latent pixels that forms one region.

    Returns:
        ``(score, consensus_mask)``: the filtered score ``(B, C, H, W)`` and a bool mask
        ``(B, H, W)`` that is true at latent pixels whose score passed unchanged.
    """
    if mode not in CONE_PROJECTIONS:
        raise ValueError(f"unknown cone projection {mode!r}; expected one of {CONE_PROJECTIONS}")
    b, _, h, w = classifier_score.shape
    if mode == "default":
        projected, consensus = _project(implicit.reshape(b, -1), classifier_score.reshape(b, -1), max_angle_deg, False)
        return projected.reshape(classifier_score.shape), consensus[:, None, None].expand(b, h, w)
    chunks = _project(
        _to_chunks(implicit, chunk_size),
        _to_chunks(classifier_score, chunk_size),
        max_angle_deg,
        mode == "zero_binning",
    )
    mask = chunks[1].repeat_interleave(chunk_size, 1).repeat_interleave(chunk_size, 2)
    return _from_chunks(chunks[0], classifier_score.shape, chunk_size), mask


def match_norm(score: Tensor, reference: Tensor) -> Tensor:
    """Rescale each sample of ``score`` to the norm of ``reference``: ``s · |d| / |s|``.

    Norms are over all non-batch elements. A norm below 1e-22 has 1e-22 added before dividing,
    so a zero score stays zero. Shapes: ``(B, ...) × (B, ...) → (B, ...)``.
    """
    dims = tuple(range(1, score.ndim))
    score_norm = torch.linalg.vector_norm(score, dim=dims, keepdim=True)
    score_norm = torch.where(score_norm < _TINY, score_norm + _TINY, score_norm)
    return score * torch.linalg.vector_norm(reference, dim=dims, keepdim=True) / score_norm
