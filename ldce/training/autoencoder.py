"""Training the first stage of the demo LDM: a small diffusers ``AutoencoderKL`` with f = 4.

Images ``x`` in [0, 1] ``(B, 3, 32, 32)`` enter as ``2x − 1``; the encoder gives a diagonal Gaussian
posterior ``q(z | x) = N(μ, σ²)`` over ``(B, C, 8, 8)`` latents (``len(block_out_channels) = 3``
levels downsample by ``2^(3−1) = 4``) and the decoder maps a sample back to ``x̂`` in [-1, 1]:

    L = mean |x̂ − (2x − 1)|  +  kl_weight · mean_B KL(q(z | x) ‖ N(0, I))

(the KL summed over the latent elements of a sample, so ``kl_weight`` = 1e-6 only keeps the latent
scale from drifting, as in LDM). After training, ``s = 1 / std(z)`` over posterior samples of
training images is stored as the autoencoder's ``scaling_factor`` (as Stable Diffusion does), so
that ``s·z`` has unit variance for the diffusion model.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

log = logging.getLogger(__name__)


def adamw_warmup_cosine(parameters: Iterable[nn.Parameter], lr: float, warmup_steps: int, total_steps: int) -> dict:
    """Lightning's optimiser config: AdamW without weight decay, learning rate
    ``lr · min(1, (k+1)/warmup) · ½(1 + cos(π·min(1, k/total)))`` at step ``k``."""

    def factor(step: int) -> float:
        return (
            min(1.0, (step + 1) / max(1, warmup_steps))
            * 0.5
            * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))
        )

    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}


def psnr(reconstruction: Tensor, images: Tensor) -> Tensor:
    """Per-image ``10·log10(1 / mean (x̂ − x)²)`` in dB for images in [0, 1]: ``(B, …) → (B,)``."""
    mse = (reconstruction - images).flatten(1).square().mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


class AutoencoderTraining(LightningModule):
    """``AutoencoderKL`` trained with an L1 reconstruction loss and a small KL term.

    Batches are ``(images (B, 3, H, W) in [0, 1], labels)``; labels are ignored. ``scale_images``
    training images (posterior samples) estimate the scale factor at the end of training.
    """

    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (16, 32, 64),
        layers_per_block: int = 1,
        latent_channels: int = 4,
        norm_num_groups: int = 16,
        image_size: int = 32,
        kl_weight: float = 1e-6,
        lr: float = 1e-3,
        warmup_steps: int = 100,
        scale_images: int = 10000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        levels = len(block_out_channels)
        self.vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=image_size,
            scaling_factor=1.0,
        )

    def reconstruct(self, images: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """``(x̂ in [0, 1] unclamped (B, 3, H, W), KL per sample (B,))``; ``sample`` draws ``z ~ q``, else ``z = μ``."""
        posterior = self.vae.encode(2 * images - 1).latent_dist
        z = posterior.sample() if sample else posterior.mode()
        return (self.vae.decode(z).sample + 1) / 2, posterior.kl()

    def loss(self, images: Tensor) -> dict[str, Tensor]:
        """``{"loss": L, "l1": …, "kl": …}`` of the module docstring for images ``(B, 3, H, W)`` in [0, 1]."""
        reconstruction, kl = self.reconstruct(images, sample=True)
        # |x̂ − x| on [0, 1] images is half the L1 in the [-1, 1] space of the formula; the factor 2 restores it
        l1 = 2 * (reconstruction - images).abs().mean()
        return {"loss": l1 + self.hparams.kl_weight * kl.mean(), "l1": l1, "kl": kl.mean()}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        parts = self.loss(batch[0])
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True)
        return parts["loss"]

    def evaluation_metrics(self, images: Tensor) -> dict[str, Tensor]:
        """Mean squared error and PSNR (dB) of the clamped posterior-mean reconstruction, batch means."""
        reconstruction = self.reconstruct(images, sample=False)[0].clamp(0, 1)
        return {"mse": (reconstruction - images).square().mean(), "psnr": psnr(reconstruction, images).mean()}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.evaluation_metrics(batch[0]).items()}, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log_dict({f"test/{k}": v for k, v in self.evaluation_metrics(batch[0]).items()})

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(
            self.parameters(), self.hparams.lr, self.hparams.warmup_steps, int(self.trainer.estimated_stepping_batches)
        )

    @torch.no_grad()
    def estimate_scale_factor(
        self, images: Tensor, generator: torch.Generator | None = None, chunk: int = 500
    ) -> float:
        """``s = 1 / std(z)`` over all elements of posterior samples ``z ~ q(z | x)`` of ``images (N, 3, H, W)``."""
        latents = [self.vae.encode(2 * part - 1).latent_dist.sample(generator) for part in images.split(chunk)]
        return 1.0 / torch.cat(latents).std().item()

    def on_train_end(self) -> None:
        """Store ``s`` from the first ``scale_images`` training images in the autoencoder's config."""
        batches, count = [], 0
        for images, _ in self.trainer.train_dataloader:
            batches.append(images)
            count += len(images)
            if count >= self.hparams.scale_images:
                break
        images = torch.cat(batches)[: self.hparams.scale_images].to(self.device)
        self.vae.eval()
        scale = self.estimate_scale_factor(images, torch.Generator(self.device).manual_seed(0))
        self.vae.register_to_config(scaling_factor=scale)
        log.info("latent scale factor s = 1/std(z) = %.5f over %d training images", scale, len(images))

    def export(self, path: str | os.PathLike) -> None:
        """``AutoencoderKL.save_pretrained(path)``: config (with ``scaling_factor``) and safetensors weights."""
        self.vae.save_pretrained(Path(path))
