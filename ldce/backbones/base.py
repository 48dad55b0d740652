"""The latent diffusion model as LDCE sees it: one small interface for every backbone.

Notation follows ``docs/algorithm.md``: images ``x`` live in [0, 1], the first stage maps
``x ↦ z0 = s · E(2x − 1)`` and back ``z ↦ (D(z / s) + 1) / 2``, the noise model predicts
``eps(z, t, c)`` and ``abar`` is the cumulative product of the training schedule.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Networks:
    """The networks a backbone runs, for speed switches (``ldce.backbones.speedups``).

    noise_model: ``eps``'s network (a diffusers UNet or transformer); first_stage: the autoencoder
    (``encode``/``decode``); decoder: the first stage's decoding network, which LDCE differentiates
    through at every step.
    """

    noise_model: nn.Module
    first_stage: nn.Module
    decoder: nn.Module


class Backbone(nn.Module, abc.ABC):
    """A latent diffusion model: first stage, noise model, conditioning and schedule.

    Subclasses register ``alphas_cumprod`` (float32, shape ``(T,)``) as a buffer and set
    ``scale_factor`` (``s``) and ``image_size`` (the pixel resolution the first stage expects).
    """

    alphas_cumprod: Tensor
    scale_factor: float
    image_size: int

    @abc.abstractmethod
    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        """``z0 = s · E(2x − 1)``.

        images: ``(B, 3, H, W)`` in [0, 1]. noise: optional standard normal ``(B, C, h, w)``
        used to sample a KL posterior (``mean + std · noise``); ``None`` takes its mode.
        Deterministic first stages (VQ: the pre-quantisation encoding) ignore it.
        Returns ``(B, C, h, w)``.
        """

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """``(D(z / s) + 1) / 2``, differentiable, not clamped.

        latents: ``(B, C, h, w)``. Returns ``(B, 3, H, W)``; a VQ decoder quantises with a
        straight-through estimator so that gradients reach ``latents``.
        """

    @abc.abstractmethod
    def eps(self, latents: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        """Noise prediction ``eps(z, t, c)``.

        latents: ``(B, C, h, w)``; timesteps: int64 ``(B,)``; cond: as returned by
        :meth:`conditioning`, batch-first. Returns ``(B, C, h, w)``.
        """

    @abc.abstractmethod
    def conditioning(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Conditioning ``c = cond(y_t)`` and null conditioning ``u`` for a batch of targets.

        targets: int64 ``(B,)`` class indices. Returns ``(cond, null)``, each batch-first with
        ``B`` rows, in whatever form :meth:`eps` takes (class rows, text embeddings, labels).
        """

    @abc.abstractmethod
    def networks(self) -> Networks:
        """The noise model, the first stage and its decoder (see :class:`Networks`)."""

    @property
    def device(self) -> torch.device:
        return self.alphas_cumprod.device


def check_targets(targets: Tensor, num_classes: int) -> None:
    """Raise unless ``targets`` is a 1-D integer tensor with values in ``[0, num_classes)``."""
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.dim() != 1:
        raise ValueError(f"targets must be a 1-D integer tensor, got {targets.dtype} {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"target classes must lie in [0, {num_classes}) for this model's {num_classes} classes; "
            f"got {targets.tolist()}"
        )


def linear_alphas_cumprod(beta_start: float, beta_end: float, num_timesteps: int = 1000) -> Tensor:
    """``abar`` of the LDM "linear" schedule: ``betas = linspace(√β0, √β1, T)²``.

    Computed in float64 and rounded once to float32, as the original checkpoints store it
    (diffusers' float32 ``scaled_linear`` differs by ~1e-6). Returns float32 ``(T,)``.
    """
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
