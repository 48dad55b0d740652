"""What the diffusers backbones with a KL first stage share (Stable Diffusion, DiT).

First stage (``docs/algorithm.md`` step 1 and the decoder of step 4): a diffusers ``AutoencoderKL``,
``z0 = s · (μ + σ·ξ)`` with ``(μ, log σ²) = E(2x − 1)`` and ``x = (D(z / s) + 1) / 2``.
Also here: the training schedule read from a diffusers scheduler config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import Tensor

from ldce.backbones.base import Backbone, linear_alphas_cumprod
from ldce.checkpoints import existing_file

SCHEDULER_CONFIG = Path("scheduler") / "scheduler_config.json"


def schedule_alphas_cumprod(config: Mapping[str, Any]) -> Tensor:
    """``abar`` of a diffusers scheduler config (defaults as diffusers' DDIM scheduler), float32 ``(T,)``.

    ``"scaled_linear"`` (SD): ``betas = linspace(√β0, √β1, T)²``; ``"linear"`` (DiT/ADM):
    ``betas = linspace(β0, β1, T)``; ``abar_t = Π_{i≤t} (1 − β_i)``, computed in float64.
    """
    kind = config.get("beta_schedule", "linear")
    start, end = config.get("beta_start", 0.0001), config.get("beta_end", 0.02)
    steps = config.get("num_train_timesteps", 1000)
    if config.get("trained_betas") is not None:
        raise ValueError("scheduler configs with trained_betas are not supported; give beta_start/beta_end")
    if kind == "scaled_linear":
        return linear_alphas_cumprod(start, end, steps)
    if kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
        return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    raise ValueError(f"unsupported beta_schedule {kind!r}: expected 'linear' or 'scaled_linear'")


def read_scheduler_config(folder: Path, default: Mapping[str, Any]) -> dict[str, Any]:
    """``folder/scheduler/scheduler_config.json`` if the folder has one, else ``default``."""
    path = folder / SCHEDULER_CONFIG
    return json.loads(path.read_text()) if path.is_file() else dict(default)


def require_component(folder: Path, subfolder: str) -> None:
    """Raise unless ``folder/subfolder/config.json`` exists (a diffusers/transformers component)."""
    existing_file(folder / subfolder / "config.json", f"{subfolder!r} component config in {str(folder)!r}")


class KLBackbone(Backbone):
    """A :class:`Backbone` whose first stage is a diffusers ``AutoencoderKL``.

    vae: images ``(B, 3, H, W)`` in [-1, 1] ↔ latents ``(B, C, H/f, W/f)``, ``f = 2^(levels − 1)``;
    ``s = vae.config.scaling_factor``. latent_size: the noise model's latent resolution ``h``,
    so ``image_size = h · f``. scheduler_config: a diffusers scheduler config giving ``abar``.
    Subclasses attach their noise model, then call :meth:`_freeze`.
    """

    def __init__(self, vae: AutoencoderKL, latent_size: int, scheduler_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.vae = vae
        self.scheduler_config = dict(scheduler_config)
        self.register_buffer("alphas_cumprod", schedule_alphas_cumprod(self.scheduler_config))
        self.scale_factor = float(vae.config.scaling_factor)
        self.image_size = int(latent_size) * 2 ** (len(vae.config.block_out_channels) - 1)

    def _freeze(self) -> None:
        """LDCE differentiates w.r.t. latents only: parameters frozen, modules in eval mode."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> KLBackbone:
        """Always eval: dropout and DiT's label dropout must stay off whatever the caller asks."""
        return super().train(False)

    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        """``z0 = s · (μ + σ·ξ)``, ``(μ, σ)`` the posterior of ``E(2x − 1)``; ``ξ = noise`` or 0 (mode).

        images: ``(B, 3, H, W)`` in [0, 1]; noise: ``(B, C, h, w)`` or ``None``. Returns ``(B, C, h, w)``.
        """
        posterior = self.vae.encode(2.0 * images - 1.0).latent_dist
        if noise is None:
            return self.scale_factor * posterior.mean
        if noise.shape != posterior.mean.shape:
            raise ValueError(
                f"noise must have the latent shape {tuple(posterior.mean.shape)}, got {tuple(noise.shape)}"
            )
        return self.scale_factor * (posterior.mean + posterior.std * noise)

    def decode(self, latents: Tensor) -> Tensor:
        """``x = (D(z / s) + 1) / 2``, differentiable, not clamped: ``(B, C, h, w)`` → ``(B, 3, H, W)``."""
        return (self.vae.decode(latents / self.scale_factor).sample + 1.0) / 2.0

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``vae/`` and ``scheduler/scheduler_config.json`` (diffusers layout); returns the folder."""
        folder = Path(folder)
        self.vae.save_pretrained(folder / "vae")
        (folder / SCHEDULER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (folder / SCHEDULER_CONFIG).write_text(json.dumps(self.scheduler_config, indent=2, sort_keys=True))
        return folder
