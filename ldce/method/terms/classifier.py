"""LDCE's classifier term with consensus guidance (docs/algorithm.md step 4).

L_c = Σ_batch log p_f(y_t | x̂0)        (binary: −BCEWithLogits(f(x̂0), y_t))
s_c = −√(1 − a)·∂L_c/∂z
s_c ← consensus(d, s_c)                  (projected guidance; ``ldce.method.consensus``)
s_c ← s_c·|d|/|s_c|                      (enforce_same_norms)
score = λc·s_c
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ldce.classifiers.logits import target_log_likelihood, target_probability
from ldce.method.consensus import ConeProjection, consensus_guidance, match_norm
from ldce.method.terms.base import GuidanceTerm, ImageGradient, StepInputs, Task, TermOutput
from ldce.method.vjp import scaled_vjp


@dataclass(frozen=True)
class Consensus:
    """The consensus test: cone half angle ``θmax`` in degrees, projection type, region side in latent pixels."""

    max_angle_deg: float = 45.0
    projection: ConeProjection = "zero_binning"
    chunk_size: int = 1


def classifier_gradient(classifier: nn.Module, image: Tensor, targets: Tensor) -> ImageGradient:
    """``∂/∂x̂0 Σ log p_f(y_t | x̂0)`` ``(B, 3, H, W)`` float32 and ``p_f(y_t | x̂0)`` ``(B,)``.

    ``∂L_c/∂logits`` is taken in float32 and carried back through the classifier by ``scaled_vjp``
    (which keeps small gradients alive in float16 graphs).
    """
    probe = image.detach().float().requires_grad_(True)
    logits = classifier(probe)
    scores = logits.detach().float().requires_grad_(True)
    (grad_scores,) = torch.autograd.grad(target_log_likelihood(scores, targets).sum(), scores)
    gradient = scaled_vjp(logits, probe, grad_scores[None])[0]
    return ImageGradient(gradient, target_probability(scores.detach(), targets))


class ClassifierGuidance(GuidanceTerm):
    """``λc·s_c``: the classifier's score towards the target, filtered by consensus with ``d``.

    Args:
        classifier: ``f``, [0, 1] images ``(B, 3, H, W)`` → logits ``(B, K)`` or binary logits ``(B,)``.
        weight: ``λc`` (``sampler.classifier_lambda``).
        consensus: the consensus test; ``None`` passes the raw score (``guidance: unprojected``).
        enforce_same_norms: rescale the score to ``|d|`` per sample before weighting.
    """

    needs_gradient = True

    def __init__(
        self, classifier: nn.Module, weight: float, consensus: Consensus | None, enforce_same_norms: bool
    ) -> None:
        self.classifier, self.weight = classifier, weight
        self.consensus, self.enforce_same_norms = consensus, enforce_same_norms

    def image_gradient(self, image: Tensor, task: Task) -> ImageGradient:
        return classifier_gradient(self.classifier, image, task.targets)

    def score(self, inputs: StepInputs, latent_gradient: Tensor | None) -> TermOutput:
        score, mask = inputs.score_scale * latent_gradient, None
        if self.consensus is not None:
            c = self.consensus
            score, mask = consensus_guidance(inputs.implicit, score, c.max_angle_deg, c.projection, c.chunk_size)
        if self.enforce_same_norms:
            score = match_norm(score, inputs.implicit)
        return TermOutput(self.weight * score, mask, latent_gradient.abs().sum(1))
