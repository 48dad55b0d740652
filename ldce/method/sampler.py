"""The DDIM loop of LDCE (docs/algorithm.md step 4, last line), over any guided noise model.

Per step ``i`` from ``start − 1`` down to 0 (``a = a_i``, ``a' = a_prev_i``, ``σ = σ_i``):

    ê = noise_model(z, i)
    z ← √a'·(z − √(1−a)·ê)/√a + √(1 − a' − σ²)·ê + σ·ξ_i
    z ← hook(z, i, record)   for each step hook (e.g. keep a region of the original)

The loop knows nothing of guidance, Lightning, files or W&B: guidance lives in the noise model
(``ldce.method.guided``), per-step observations leave through ``callback``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.method.config import LDCEConfig
from ldce.method.guided import GuidedNoise, StepRecord, configured_noise_model, ldce_terms, predicted_clean_latent
from ldce.method.schedule import DDIMGrid
from ldce.method.terms import Task

StepCallback = Callable[[StepRecord], None]


class NoiseModel(Protocol):
    """``(z (B, C, h, w), grid index) → GuidedNoise``: what the loop asks at every step."""

    def __call__(self, z: Tensor, index: int) -> GuidedNoise: ...


class StepHook(Protocol):
    """Called after each DDIM update: ``(z_prev (B, C, h, w), grid index, record) → z_prev``."""

    def __call__(self, z: Tensor, index: int, record: StepRecord) -> Tensor: ...


def ddim_update(
    z: Tensor, eps: Tensor, alpha: Tensor, alpha_prev: Tensor, sigma: Tensor, noise: Tensor | None
) -> Tensor:
    """``z_prev = √a_prev·ẑ0 + √(1 − a_prev − σ²)·ε + σ·ξ`` with ``ẑ0`` from ``ε``: ``(B, C, h, w)``."""
    z_prev = alpha_prev.sqrt() * predicted_clean_latent(z, eps, alpha) + torch.sqrt(1.0 - alpha_prev - sigma**2) * eps
    return z_prev if noise is None else z_prev + sigma * noise


def sample(
    noise_model: NoiseModel,
    z: Tensor,
    start: int,
    grid: DDIMGrid,
    step_noise: Tensor | None = None,
    hooks: Sequence[StepHook] = (),
    callback: StepCallback | None = None,
) -> Tensor:
    """Denoise ``z`` (noised to grid index ``start``) with ``i = start−1, …, 0``; returns the final latent.

    z: ``(B, C, h, w)``; grid: on ``z``'s device; step_noise: ``(start, B, C, h, w)`` (``ξ`` of
    step ``i`` at row ``i``) for ``η > 0``.
    """
    for index in reversed(range(start)):
        z, record = denoise_step(noise_model, z, index, grid, None if step_noise is None else step_noise[index])
        for hook in hooks:
            z = hook(z, index, record)
        if callback is not None:
            callback(record)
    return z


def denoise_step(
    noise_model: NoiseModel, z: Tensor, index: int, grid: DDIMGrid, noise: Tensor | None = None
) -> tuple[Tensor, StepRecord]:
    """One DDIM step at grid index ``index`` with the noise model's ``ê``: ``z (B, C, h, w) → z_prev``."""
    guided = noise_model(z, index)
    z_prev = ddim_update(z.detach(), guided.eps, grid.alphas[index], grid.alphas_prev[index], grid.sigmas[index], noise)
    return z_prev, guided.record


def guided_step(
    backbone: Backbone,
    classifier: nn.Module | None,
    z: Tensor,
    index: int,
    grid: DDIMGrid,
    task: Task,
    config: LDCEConfig,
    noise: Tensor | None = None,
) -> tuple[Tensor, StepRecord]:
    """One step of LDCE with ``config``'s terms at grid index ``index``: ``z (B, C, h, w) → z_prev``.

    ``grid`` must be on ``z``'s device; ``noise`` is ``ξ`` for ``η > 0``.
    """
    noise_model = configured_noise_model(config, backbone, ldce_terms(config, classifier), grid, task)
    return denoise_step(noise_model, z, index, grid, noise)
