"""Classifier-guided latent DDIM with consensus guidance (``ALGORITHM.md`` step 4).

The sampler is a few pure functions over tensors plus one loop. It knows nothing of Lightning,
files or W&B: per-step observations leave through an optional ``callback``.

Per step ``i`` (``t = τ_i``, ``a = a_i``):

    e_u = eps(z, t, u)   (with an autograd graph)      e_c = eps(z, t, c)   (no graph)
    ẑ0 = (z − √(1−a)·e_u) / √a,   x̂0 = (D(ẑ0/s) + 1) / 2
    g_c = ∂/∂z Σ log p_f(y_t | x̂0),   g_d = ∂/∂z ||clamp(x̂0, 0, 1) − x||_p^p
    d = e_c − e_u,   s_c = −√(1−a)·g_c,   s_d = −√(1−a)·g_d
    s_c ← consensus(d, s_c);   s_c ← λc·s_c·|d|/|s_c|,   s_d ← λd·s_d·|d|/|s_d|
    ê = e_u + scale·(s_c − s_d)          (guidance = free: ê = e_u + scale·d)
    z ← √a_prev·(z − √(1−a)·ê)/√a + √(1 − a_prev − σ²)·ê + σ·ξ

The forward pass runs once per step: both gradients are vector–Jacobian products of the same
``z ↦ x̂0`` graph with the image-space gradients of the two losses. Under autocast (bf16/fp16) only
the networks run in reduced precision: ``z``, the noise predictions, the losses' gradients and the
guidance arithmetic are float32, and vectors carried back through float16 graphs are rescaled first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.classifiers import target_log_likelihood, target_probability
from ldce.config import LDCEConfig
from ldce.consensus import consensus_guidance, match_norm
from ldce.schedule import DDIMGrid


@dataclass(frozen=True)
class Task:
    """What a batch is asked for, fixed over all steps.

    images: the originals ``x`` in [0, 1], ``(B, 3, H, W)``; targets: int64 ``(B,)``;
    cond / null: the backbone's conditioning for the targets and the null conditioning.
    """

    images: Tensor
    targets: Tensor
    cond: Tensor
    null: Tensor


@dataclass(frozen=True)
class StepRecord:
    """What one step saw, for progress displays and videos.

    index: DDIM grid index ``i``; timestep: ``τ_i`` (0-dim int64, on the latent's device); clean_image: ``clamp(x̂0, 0, 1)``
    ``(B, 3, H, W)``; target_probability: ``(B,)`` (``None`` without a classifier);
    consensus_mask: bool ``(B, h, w)`` (``None`` unless guidance is projected).
    """

    index: int
    timestep: Tensor
    clean_image: Tensor
    target_probability: Tensor | None
    consensus_mask: Tensor | None
    def head(self, n: int) -> StepRecord:
        """The record of the first ``n`` samples."""
        per_sample = ("clean_image", "target_probability", "consensus_mask")
        return replace(self, **{name: first_rows(getattr(self, name), n) for name in per_sample})


def first_rows(value: Tensor | None, n: int) -> Tensor | None:
    """``value[:n]``, or ``None`` for an absent per-sample tensor."""
    return None if value is None else value[:n]


StepCallback = Callable[[StepRecord], None]


def predicted_clean_latent(z: Tensor, eps: Tensor, alpha: Tensor) -> Tensor:
    """``ẑ0 = (z − √(1 − a)·ε) / √a``; all ``(B, C, h, w)``, ``alpha`` a 0-dim tensor."""
    return (z - torch.sqrt(1.0 - alpha) * eps) / alpha.sqrt()


def ddim_update(z: Tensor, eps: Tensor, alpha: Tensor, alpha_prev: Tensor, sigma: Tensor, noise: Tensor | None) -> Tensor:
    """``z_prev = √a_prev·ẑ0 + √(1 − a_prev − σ²)·ε + σ·ξ`` with ``ẑ0`` from ``ε``: ``(B, C, h, w)``."""
    z_prev = alpha_prev.sqrt() * predicted_clean_latent(z, eps, alpha) + torch.sqrt(1.0 - alpha_prev - sigma**2) * eps
    return z_prev if noise is None else z_prev + sigma * noise


def distance_loss(image: Tensor, original: Tensor, p: int) -> Tensor:
    """``||clamp(x̂0, 0, 1) − x||_p^p`` per sample (p = 1: L1; p = 2: squared L2): ``(B, …) → (B,)``."""
    diff = (image.clamp(0.0, 1.0) - original).flatten(1)
    return diff.abs().sum(1) if p == 1 else diff.square().sum(1)


def guided_noise(e_u: Tensor, implicit: Tensor, classifier_score: Tensor, distance_score: Tensor, config: LDCEConfig) -> tuple[Tensor, Tensor | None]:
    """Combine the scores into the guided noise ``ê`` (all ``(B, C, h, w)``).

    Returns ``(ê, consensus_mask)``; the mask is bool ``(B, h, w)`` for projected guidance, else None.
    """
    mask = None
    if config.guidance == "projected":
        classifier_score, mask = consensus_guidance(
            implicit, classifier_score, config.deg_cone_projection, config.cone_projection_type, config.consensus_chunk_size
        )
    if config.enforce_same_norms:
        classifier_score = match_norm(classifier_score, implicit)
        distance_score = match_norm(distance_score, implicit)
    score = config.classifier_lambda * classifier_score - config.dist_lambda * distance_score
    return e_u + config.scale * score, mask


def image_gradients(classifier: nn.Module, image: Tensor, task: Task, p: int) -> tuple[Tensor, Tensor, Tensor]:
    """Image-space gradients ``∂L_c/∂x̂0``, ``∂L_d/∂x̂0`` (each ``(B, 3, H, W)``, float32) and ``p_f(y_t | x̂0)`` ``(B,)``.

    ``∂L_c/∂logits`` is taken in float32 and carried back through the classifier by ``scaled_vjp``.
    """
    probe = image.detach().float().requires_grad_(True)
    logits = classifier(probe)
    scores = logits.detach().float().requires_grad_(True)
    (grad_scores,) = torch.autograd.grad(target_log_likelihood(scores, task.targets).sum(), scores)
    grad_c = scaled_vjp(logits, probe, grad_scores[None])[0]
    (grad_d,) = torch.autograd.grad(distance_loss(probe, task.images, p).sum(), probe)
    return grad_c, grad_d, target_probability(scores.detach(), task.targets)


def scaled_vjp(output: Tensor, inputs: Tensor, vectors: Tensor, batched: bool = False) -> Tensor:
    """``Jᵀ·v`` for each of the ``K`` vectors, ``J = ∂output/∂inputs`` (per-sample networks, batch first).

    vectors: ``(K, *output.shape)``. Returns ``(K, *inputs.shape)`` in ``inputs``' dtype: ``K``
    backward passes, or one batched (vmap) pass. When ``output`` is float16 (fp16 autocast), each
    vector is first divided by its largest entry per sample and the products multiplied back in
    float32 (``Jᵀ`` is linear): gradients below float16's range (~6e-8) would otherwise vanish.
    """
    count, batch = vectors.shape[:2]
    scale = None
    if output.dtype == torch.float16:
        scale = vectors.abs().reshape(count, batch, -1).amax(2).clamp_min(torch.finfo(torch.float32).tiny)
        vectors = vectors / scale.view(count, batch, *[1] * (vectors.ndim - 2))
    vectors = vectors.to(output.dtype)
    if batched:
        (products,) = torch.autograd.grad(output, inputs, vectors, is_grads_batched=True)
    else:
        products = torch.stack([torch.autograd.grad(output, inputs, v, retain_graph=k < count - 1)[0] for k, v in enumerate(vectors)])
    return products if scale is None else products * scale.view(count, batch, *[1] * (products.ndim - 2))


def guided_step(
    backbone: Backbone, classifier: nn.Module, z: Tensor, index: int, grid: DDIMGrid, task: Task, config: LDCEConfig, noise: Tensor | None = None
) -> tuple[Tensor, StepRecord]:
    """One step of LDCE at grid index ``index``: ``z (B, C, h, w) → z_prev (B, C, h, w)``.

    ``grid`` must be on ``z``'s device; ``noise`` is ``ξ`` for ``η > 0``.
    """
    alpha, timestep = grid.alphas[index], grid.timesteps[index]
    t = timestep.expand(z.shape[0])
    z = z.detach().requires_grad_(config.guidance != "free")
    with torch.no_grad():
        e_c = backbone.eps(z, t, task.cond).float()
    with torch.set_grad_enabled(config.guidance != "free"):
        e_u = backbone.eps(z, t, task.null).float()
        image = backbone.decode(predicted_clean_latent(z, e_u, alpha))
    implicit, probability, mask = e_c - e_u.detach(), None, None
    if config.guidance == "free":
        eps = e_u + config.scale * implicit
    else:
        grad_c, grad_d, probability = image_gradients(classifier, image, task, config.lp_custom)
        g_c, g_d = scaled_vjp(image, z, torch.stack([grad_c, grad_d]), config.batched_vjp)
        score_scale = -torch.sqrt(1.0 - alpha)
        eps, mask = guided_noise(e_u.detach(), implicit, score_scale * g_c, score_scale * g_d, config)
    z_prev = ddim_update(z.detach(), eps, alpha, grid.alphas_prev[index], grid.sigmas[index], noise)
    record = StepRecord(index, timestep, image.detach().float().clamp(0.0, 1.0), probability, mask)
    return z_prev, record


def sample(
    backbone: Backbone,
    classifier: nn.Module,
    z: Tensor,
    start: int,
    grid: DDIMGrid,
    task: Task,
    config: LDCEConfig,
    step_noise: Tensor | None = None,
    callback: StepCallback | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Denoise ``z`` (noised to grid index ``start``) with ``i = start−1, …, 0``.

    z: ``(B, C, h, w)``; step_noise: ``(start, B, C, h, w)`` (``ξ`` of step ``i`` at row ``i``) for
    ``η > 0``. Returns the final latent and, for projected guidance, the share of steps in which
    each latent pixel was in consensus, ``(B, h, w)`` float32.
    """
    grid = grid.to(z.device)
    consensus = torch.zeros(z.shape[0], *z.shape[2:], device=z.device) if config.guidance == "projected" else None
    for index in reversed(range(start)):
        noise = None if step_noise is None else step_noise[index]
        z, record = guided_step(backbone, classifier, z, index, grid, task, config, noise)
        if consensus is not None:
            consensus += record.consensus_mask
        if callback is not None:
            callback(record)
    return z, (consensus / max(start, 1) if consensus is not None else None)
