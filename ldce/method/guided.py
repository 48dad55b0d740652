"""The guided noise model: the backbone's noise prediction steered by guidance terms.

As in k-diffusion, guidance is a wrapper around the model, not a branch in the sampler: a
:class:`GuidedNoiseModel` is called like a noise model, ``(z, i) ↦ ê``, and the DDIM loop
(``ldce.method.sampler``) never looks inside. Per step ``i`` (``t = τ_i``, ``a = a_i``):

    1. e_c = eps(z, t, c)                                  no autograd graph
    2. e_u = eps(z, t, u),  ẑ0 = (z − √(1−a)·e_u)/√a,  x̂0 = (D(ẑ0/s) + 1)/2
                                                           one graph z ↦ x̂0, if any term needs a gradient
                                                           (through e_u only with backprop_noise_model)
       (1 and 2 as two calls on B latents or one on 2B: ``halves``, ``ldce.method.halves``)
    3. ∂L_k/∂x̂0 per term, carried back to z through the one graph (K vector–Jacobian products), or
       with ``stacked_noise_vjp`` through the decoder to ẑ0 (K products) and then through the noise
       model once, over K stacked copies of z (e_u computed on K·B latents; ``ldce.method.vjp.cut_vjp``)
    4. ê = e_u + scale · Σ_k score_k(d = e_c − e_u, ∂L_k/∂z, …)

Under autocast (bf16/fp16) only the networks run in reduced precision: ``z``, the noise
predictions, the losses' gradients and the guidance arithmetic are float32.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.method.config import LDCEConfig
from ldce.method.halves import Halves, noise_halves, stacked
from ldce.method.schedule import DDIMGrid
from ldce.method.terms import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    Consensus,
    GuidanceTerm,
    ImageGradient,
    StepInputs,
    Task,
    distance_term,
)
from ldce.method.vjp import cut_vjp, scaled_vjp


@dataclass(frozen=True)
class StepRecord:
    """What one step saw, for progress displays, confidence curves and videos.

    index: DDIM grid index ``i``; timestep: ``τ_i`` (0-dim int64); clean_image: ``clamp(x̂0, 0, 1)``
    ``(B, 3, H, W)``; target_probability: ``(B,)`` (``None`` without a classifier term);
    consensus_mask: bool ``(B, h, w)`` (``None`` without a consensus term); saliency: the classifier
    term's ``|∂L_c/∂z|`` summed over channels ``(B, h, w)`` (``None`` without one).
    """

    index: int
    timestep: Tensor
    clean_image: Tensor
    target_probability: Tensor | None
    consensus_mask: Tensor | None
    saliency: Tensor | None = None


@dataclass(frozen=True)
class GuidedNoise:
    """The guided noise ``ê`` ``(B, C, h, w)`` of one step, what the step saw, and the guidance
    ``ê − e_u = scale · Σ_k score_k`` ``(B, C, h, w)`` (``ldce.method.fast`` reuses it between steps)."""

    eps: Tensor
    record: StepRecord
    guidance: Tensor


def predicted_clean_latent(z: Tensor, eps: Tensor, alpha: Tensor) -> Tensor:
    """``ẑ0 = (z − √(1 − a)·ε) / √a``; all ``(B, C, h, w)``, ``alpha`` a 0-dim tensor."""
    return (z - torch.sqrt(1.0 - alpha) * eps) / alpha.sqrt()


def ldce_terms(
    config: LDCEConfig, classifier: nn.Module | None, distance_features: nn.Module | None = None
) -> list[GuidanceTerm]:
    """The terms of ``config.guidance``: ``projected`` / ``unprojected`` → classifier (with / without
    consensus) and distance terms (in pixels, or in ``distance_features``' space for ``lp_custom:
    dino_<loss>``); ``free`` → classifier-free guidance only."""
    if config.guidance == "free":
        return [ClassifierFreeGuidance()]
    if classifier is None:
        raise ValueError(f"guidance {config.guidance!r} needs a classifier")
    consensus = None
    if config.guidance == "projected":
        consensus = Consensus(config.deg_cone_projection, config.cone_projection_type, config.consensus_chunk_size)
    return [
        ClassifierGuidance(classifier, config.classifier_lambda, consensus, config.enforce_same_norms),
        distance_term(config.lp_custom, config.dist_lambda, config.enforce_same_norms, distance_features),
    ]


def configured_noise_model(
    config: LDCEConfig, backbone: Backbone, terms: Sequence[GuidanceTerm], grid: DDIMGrid, task: Task
) -> GuidedNoiseModel:
    """The :class:`GuidedNoiseModel` over ``terms`` with ``config``'s scale and step options (the one
    place that reads them; ``ldce.method.fast`` and ``guided_step`` build theirs here)."""
    return GuidedNoiseModel(
        backbone,
        terms,
        config.scale,
        grid,
        task,
        batched_vjp=config.batched_vjp,
        halves=config.halves,
        backprop_noise_model=config.backprop_noise_model,
        stacked_noise_vjp=config.stacked_noise_vjp,
    )


def _image_gradient(term: GuidanceTerm, image: Tensor, task: Task) -> ImageGradient:
    gradient = term.image_gradient(image, task)
    if gradient is None:
        raise TypeError(f"{type(term).__name__} sets needs_gradient but its image_gradient returned None")
    return gradient


def _first(values: Sequence[Tensor | None]) -> Tensor | None:
    return next((v for v in values if v is not None), None)


class GuidedNoiseModel:
    """``ê(z, i) = e_u + scale · Σ_k score_k`` over ``terms`` (see the module docstring).

    Args:
        backbone: the latent diffusion model.
        terms: the guidance terms, summed in order.
        scale: the guidance weight (``scale``).
        grid: the DDIM grid, on the latents' device.
        task: the batch's originals, targets and conditioning.
        batched_vjp: one batched backward pass for all terms' gradients instead of one each.
        halves: ``e_c`` and ``e_u`` as two calls on ``B`` latents (``separate``) or one on ``2B``
            (``joint``; ``ldce.method.halves``).
        backprop_noise_model: build the graph through ``e_u`` (``backprop_diffusion``); false: ``e_u`` is
            computed without one and ``∂L/∂z = (1/√a)·∂L/∂ẑ0``.
        stacked_noise_vjp: the ``K`` terms' products through the noise model as one backward pass over
            ``K`` stacked copies of ``z`` (``e_u`` computed on ``K·B`` latents); through the decoder they stay
            ``K`` passes (there the copies' forward costs more than it saves).
    """

    def __init__(
        self,
        backbone: Backbone,
        terms: Sequence[GuidanceTerm],
        scale: float,
        grid: DDIMGrid,
        task: Task,
        batched_vjp: bool = False,
        halves: Halves = "separate",
        backprop_noise_model: bool = True,
        stacked_noise_vjp: bool = False,
    ) -> None:
        if not terms:
            raise ValueError("a guided noise model needs at least one guidance term")
        self.backbone, self.terms, self.scale = backbone, list(terms), scale
        self.grid, self.task, self.batched_vjp, self.halves = grid, task, batched_vjp, halves
        self.gradient_count = sum(term.needs_gradient for term in self.terms)
        self.needs_graph = self.gradient_count > 0
        self.backprop_noise_model, self.stacked_noise_vjp = backprop_noise_model, stacked_noise_vjp

    @torch.enable_grad()
    def __call__(self, z: Tensor, index: int) -> GuidedNoise:
        """z: ``(B, C, h, w)`` at grid index ``index``. Returns ``ê`` ``(B, C, h, w)`` and the step's record."""
        alpha, timestep = self.grid.alphas[index], self.grid.timesteps[index]
        batch, t = z.shape[0], timestep.expand(z.shape[0])
        through_noise = self.needs_graph and self.backprop_noise_model
        copies = self.gradient_count if through_noise and self.stacked_noise_vjp else 1
        z_graph = stacked(z.detach(), copies).requires_grad_(self.needs_graph)  # (copies·B, C, h, w)
        e_c, e_u = noise_halves(self.backbone, z_graph, t, self.task, through_noise, self.halves == "joint", copies)
        with torch.set_grad_enabled(self.needs_graph):
            clean_latents = predicted_clean_latent(z_graph, e_u, alpha)  # (copies·B, C, h, w)
            decoder_input = clean_latents if copies == 1 else clean_latents[:batch].detach().requires_grad_(True)
            image = self.backbone.decode(decoder_input)
        probe = image.detach().float()
        gradients = [_image_gradient(term, probe, self.task) for term in self.terms if term.needs_gradient]
        latent_gradients = iter(())
        if gradients:
            vectors = torch.stack([g.gradient for g in gradients])  # (K, B, 3, H, W)
            latent_gradients = iter(
                scaled_vjp(image, z_graph, vectors, self.batched_vjp)
                if copies == 1
                else cut_vjp(image, decoder_input, clean_latents, z_graph, vectors, self.batched_vjp)
            )
        z, e_u, clean_latent = z_graph[:batch].detach(), e_u[:batch].detach(), clean_latents[:batch].detach()
        inputs = StepInputs(index, alpha, z, e_u, e_c - e_u, clean_latent, probe, self.task)
        outputs = [term.score(inputs, next(latent_gradients) if term.needs_gradient else None) for term in self.terms]
        guidance = self.scale * functools.reduce(operator.add, [output.score for output in outputs])
        eps = e_u + guidance
        probability = _first([g.target_probability for g in gradients])
        masks, saliencies = [o.consensus_mask for o in outputs], [o.saliency for o in outputs]
        record = StepRecord(index, timestep, probe.clamp(0.0, 1.0), probability, _first(masks), _first(saliencies))
        return GuidedNoise(eps, record, guidance)
