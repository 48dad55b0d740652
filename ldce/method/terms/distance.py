"""LDCE's distance term: stay close to the original image (docs/algorithm.md step 4).

L_d = ||clamp(x̂0, 0, 1) − x||_p^p      (p = 1: L1; p = 2: squared L2; summed per sample)
s_d = −√(1 − a)·∂L_d/∂z
s_d ← s_d·|d|/|s_d|                      (enforce_same_norms)
score = −λd·s_d
"""

from __future__ import annotations

import torch
from torch import Tensor

from ldce.method.consensus import match_norm
from ldce.method.terms.base import GuidanceTerm, ImageGradient, StepInputs, Task, TermOutput


def distance_loss(image: Tensor, original: Tensor, p: int) -> Tensor:
    """``||clamp(x̂0, 0, 1) − x||_p^p`` per sample (p = 1: L1; p = 2: squared L2): ``(B, …) → (B,)``."""
    diff = (image.clamp(0.0, 1.0) - original).flatten(1)
    return diff.abs().sum(1) if p == 1 else diff.square().sum(1)


class DistanceGuidance(GuidanceTerm):
    """``−λd·s_d``: away from growing the pixel distance to the original.

    Args:
        p: 1 (L1) or 2 (squared L2) (``sampler.lp_custom``).
        weight: ``λd`` (``sampler.dist_lambda``).
        enforce_same_norms: rescale the score to ``|d|`` per sample before weighting.
    """

    needs_gradient = True

    def __init__(self, p: int, weight: float, enforce_same_norms: bool) -> None:
        self.p, self.weight, self.enforce_same_norms = p, weight, enforce_same_norms

    def image_gradient(self, image: Tensor, task: Task) -> ImageGradient:
        probe = image.detach().float().requires_grad_(True)
        (gradient,) = torch.autograd.grad(distance_loss(probe, task.images, self.p).sum(), probe)
        return ImageGradient(gradient)

    def score(self, inputs: StepInputs, latent_gradient: Tensor | None) -> TermOutput:
        score = inputs.score_scale * latent_gradient
        if self.enforce_same_norms:
            score = match_norm(score, inputs.implicit)
        return TermOutput(-self.weight * score)
