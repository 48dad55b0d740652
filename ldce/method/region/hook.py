"""Region-constrained denoising: a step hook that keeps the original's trajectory outside the region.

After the guided DDIM update of grid index ``i`` (``a' = a_prev_i``; ``z0`` the original's encoding,
``ξ`` the sample's own start noise, ``R`` the region ``(B, h, w)``):

    z ← R ⊙ z + (1 − R) ⊙ (√a'·z0 + √(1 − a')·ξ)        (i > 0; blended / RePaint-style latent diffusion)
    z ← R ⊙ z + (1 − R) ⊙ z0                              (i = 0: the final latent keeps the original)

from the ``warmup``-th guided step on (never without ``blend``). The region comes from a
:class:`RegionEstimate`: fixed (``given``, ``segmentation``) or re-estimated from every step's record
(``consensus``, ``gradient``); its soft ``score`` ranks the pixels of the composite.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ldce.method.guided import StepRecord
from ldce.method.region.config import RegionConfig
from ldce.method.region.masks import consensus_region, top_share_region
from ldce.method.schedule import DDIMGrid


class RegionEstimate(Protocol):
    """Sees every step's record and says the current region (bool ``(B, h, w)``)."""

    def observe(self, record: StepRecord) -> None: ...

    def region(self) -> Tensor: ...

    def score(self) -> Tensor:
        """Each latent pixel's claim to be changed, float ``(B, h, w)`` in [0, 1] (0: never)."""


class FixedRegion:
    """A region known before denoising (``given``, ``segmentation``)."""

    def __init__(self, region: Tensor) -> None:
        self.fixed = region

    def observe(self, record: StepRecord) -> None:
        return None

    def region(self) -> Tensor:
        return self.fixed

    def score(self) -> Tensor:
        return self.fixed.float()


class ConsensusRegion:
    """Where the latent pixels passed the consensus test in at least ``threshold`` of the steps so far."""

    def __init__(self, threshold: float, radius: int) -> None:
        self.threshold, self.radius = threshold, radius
        self.passed: Tensor | None = None
        self.steps = 0

    def observe(self, record: StepRecord) -> None:
        if record.consensus_mask is None:
            raise ValueError("region source 'consensus' needs consensus guidance (method.guidance: projected)")
        mask = record.consensus_mask.float()
        self.passed = mask if self.passed is None else self.passed + mask
        self.steps += 1

    def region(self) -> Tensor:
        return consensus_region(self.passed / self.steps, self.threshold, self.radius)

    def score(self) -> Tensor:
        """The share of steps in consensus (a pixel never in consensus is never changed)."""
        return self.passed / self.steps


class GradientRegion:
    """The top ``share`` of latent pixels by the classifier term's saliency at the latest step."""

    def __init__(self, share: float, radius: int) -> None:
        self.share, self.radius = share, radius
        self.saliency: Tensor | None = None

    def observe(self, record: StepRecord) -> None:
        if record.saliency is None:
            raise ValueError(
                "region source 'gradient' needs a classifier term (method.guidance: projected or unprojected)"
            )
        self.saliency = record.saliency

    def region(self) -> Tensor:
        return top_share_region(self.saliency, self.share, self.radius)

    def score(self) -> Tensor:
        """The latest saliency over its per-sample maximum."""
        flat = self.saliency.flatten(1).float()
        return (flat / flat.amax(1, keepdim=True).clamp_min(1e-12)).view_as(self.saliency)


def estimate(config: RegionConfig, fixed: Tensor | None) -> RegionEstimate:
    """The estimate of ``config.source``; ``fixed`` ``(B, h, w)`` for ``given`` and ``segmentation``."""
    if config.source == "consensus":
        return ConsensusRegion(config.threshold, config.dilation)
    if config.source == "gradient":
        return GradientRegion(config.share, config.dilation)
    if fixed is None:
        raise ValueError(f"region source {config.source!r} needs its mask before denoising")
    return FixedRegion(fixed)


class RegionHook:
    """The step hook of the module docstring; ``applied`` is the last region it used (``None``: none yet).

    Args:
        estimate: where the region comes from.
        blend: apply the region during denoising (else only observe).
        warmup: guided steps before the region is applied.
        z0: the originals' encodings ``(B, C, h, w)``; xi: the samples' start noise ``(B, C, h, w)``.
        grid: the DDIM grid, on the latents' device.
        limit: the pixels a fixed region allows, bool ``(B, 1, H, W)`` (``given``, ``segmentation``).
    """

    def __init__(
        self,
        estimate: RegionEstimate,
        blend: bool,
        warmup: int,
        z0: Tensor,
        xi: Tensor,
        grid: DDIMGrid,
        limit: Tensor | None = None,
    ) -> None:
        self.estimate, self.blend, self.warmup, self.limit = estimate, blend, warmup, limit
        self.z0, self.xi, self.grid = z0, xi, grid
        self.steps = 0
        self.applied: Tensor | None = None

    def __call__(self, z: Tensor, index: int, record: StepRecord) -> Tensor:
        """z: ``z_prev`` ``(B, C, h, w)`` after the update of grid index ``index``."""
        self.estimate.observe(record)
        self.steps += 1
        if not self.blend or (self.steps < self.warmup and index > 0):
            return z
        self.applied = self.estimate.region()
        level = self.grid.alphas_prev[index]
        known = self.z0 if index == 0 else level.sqrt() * self.z0 + (1 - level).sqrt() * self.xi
        return torch.where(self.applied[:, None], z, known.to(z.dtype))
