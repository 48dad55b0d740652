"""Training the noise model of the demo LDM: a class-conditional UNet on the frozen autoencoder's latents.

The result has exactly the format of the paper's ImageNet model (cin256-v2, ``docs/algorithm.md``): a
diffusers ``UNet2DConditionModel`` built from an openaimodel-style config, an ``nn.Embedding``
class table with ``num_classes + 1`` rows whose last row is the null class ``u``, one
cross-attention token ``table[y]`` ``(B, 1, D)``, eps-prediction and the LDM linear schedule.

Latents: the training images are encoded once in :meth:`setup` to the scaled posterior
``s·μ, s·σ`` of ``q(z | 2x − 1)`` (``s`` = the autoencoder's ``scaling_factor``); every step draws
a fresh posterior sample ``z0 = s·μ + s·σ·ξ``, as LDM does. Per step, with ``t ~ U{0 … T−1}``:

    z_t = √ā_t · z0 + √(1 − ā_t) · ε,   ε ~ N(0, I)
    y ← u with probability p_uncond  (classifier-free guidance dropout)
    L = mean ‖ε − eps_θ(z_t, t, table[y])‖²

An exponential moving average of the UNet and the class table (LitEma's warm-up:
``β_n = min(β, (1 + n)/(10 + n))``) is validated and exported.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ldce.backbones import ldm_config
from ldce.backbones.base import linear_alphas_cumprod
from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.checkpoints import existing_dir
from ldce.training.autoencoder import adamw_warmup_cosine

log = logging.getLogger(__name__)

LatentBatch = tuple[Tensor, Tensor, Tensor]


def ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """``multi_avg_fn`` for :class:`AveragedModel`: ``ema ← β_n·ema + (1 − β_n)·θ``, ``β_n = min(β, (1+n)/(10+n))``."""

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = int(num_averaged)
        beta = min(decay, (1 + n) / (10 + n))
        for ema, param in zip(averaged, current, strict=True):
            ema.lerp_(param, 1.0 - beta)

    return update


@runtime_checkable
class EncodableSets(Protocol):
    """A datamodule whose image sets can be replaced by transformed ones (``FashionMNISTDataModule``)."""

    def map_sets(self, transform: Callable[[Dataset], Dataset]) -> None:
        """Replace the training and validation sets by ``transform`` of them."""


class LatentDiffusionTraining(LightningModule):
    """Class-conditional eps-prediction on ``s``-scaled latents of a frozen ``AutoencoderKL`` folder.

    Batches from the datamodule are ``(images (B, 3, H, W) in [0, 1], labels (B,))``; :meth:`setup`
    swaps its ``train_set`` / ``val_set`` for datasets of ``(s·μ (C, h, w), s·σ (C, h, w), label)``,
    keeping its loader settings. The UNet arguments are those of an openaimodel ``UNetModel``
    (``attention_resolutions`` are downsampling factors of the latent).
    """

    def __init__(
        self,
        autoencoder: str,
        num_classes: int = 10,
        model_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 1),
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] = (1, 2),
        num_head_channels: int = 32,
        context_dim: int = 64,
        uncond_prob: float = 0.1,
        lr: float = 1e-3,
        warmup_steps: int = 200,
        ema_decay: float = 0.9995,
        linear_start: float = 0.0015,
        linear_end: float = 0.0195,
        timesteps: int = 1000,
        image_size: int = 32,
        encode_batch_size: int = 500,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.first_stage = (
            AutoencoderKL.from_pretrained(existing_dir(autoencoder, "autoencoder"), local_files_only=True)
            .requires_grad_(False)
            .eval()
        )
        self.scale_factor = float(self.first_stage.config.scaling_factor)
        channels = self.first_stage.config.latent_channels
        latent_size = image_size // 2 ** (len(self.first_stage.config.block_out_channels) - 1)
        unet_params = {
            "image_size": latent_size,
            "in_channels": channels,
            "out_channels": channels,
            "model_channels": model_channels,
            "attention_resolutions": list(attention_resolutions),
            "num_res_blocks": num_res_blocks,
            "channel_mult": list(channel_mult),
            "num_head_channels": num_head_channels,
            "use_spatial_transformer": True,
            "transformer_depth": 1,
            "context_dim": context_dim,
        }
        unet_config = ldm_config.unet_config_from_ldm({"unet_config": {"params": unet_params}}, type(self).__name__)
        self.denoiser = nn.ModuleDict(
            {"unet": UNet2DConditionModel(**unet_config), "class_embedding": nn.Embedding(num_classes + 1, context_dim)}
        )
        self.ema = AveragedModel(self.denoiser, multi_avg_fn=ema_update(ema_decay)).requires_grad_(False)
        self.register_buffer("alphas_cumprod", linear_alphas_cumprod(linear_start, linear_end, timesteps))

    @property
    def null_class(self) -> int:
        """The null row ``u`` of the class table: ``num_classes``."""
        return self.hparams.num_classes

    @torch.no_grad()
    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled posterior ``(s·μ, s·σ)`` of ``q(z | 2x − 1)``, each ``(B, C, h, w)``;
        images ``(B, 3, H, W)`` in [0, 1]."""
        posterior = self.first_stage.encode(2 * images.to(self.device) - 1).latent_dist
        return self.scale_factor * posterior.mean, self.scale_factor * posterior.std

    def setup(self, stage: str) -> None:
        """Encode the datamodule's image sets once (without a datamodule, batches must already be latents)."""
        if isinstance(self.trainer.datamodule, EncodableSets):
            self.trainer.datamodule.map_sets(self.encode_dataset)

    def encode_dataset(self, dataset: Dataset) -> TensorDataset:
        """``(image, label)`` items → ``TensorDataset(s·μ, s·σ, labels)`` on the CPU."""
        parts = [
            (*self.encode(images), targets) for images, targets in DataLoader(dataset, self.hparams.encode_batch_size)
        ]
        encoded = TensorDataset(*(torch.cat([part[k].cpu() for part in parts]) for k in range(3)))
        log.info("encoded %d images to latents of shape %s", len(encoded), tuple(encoded[0][0].shape))
        return encoded

    def drop_labels(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Classifier-free dropout: each label becomes the null class with probability ``uncond_prob``."""
        drop = torch.rand(labels.shape, generator=generator, device=labels.device) < self.hparams.uncond_prob
        return labels.masked_fill(drop, self.null_class)

    @staticmethod
    def predict_noise(denoiser: nn.ModuleDict, latents: Tensor, timesteps: Tensor, labels: Tensor) -> Tensor:
        """``eps(z_t, t, table[y])``: latents ``(B, C, h, w)``, timesteps and labels int64 ``(B,)``."""
        cond = denoiser["class_embedding"](labels)[:, None, :]
        return denoiser["unet"](latents, timesteps, encoder_hidden_states=cond).sample

    def loss(
        self, batch: LatentBatch, denoiser: nn.ModuleDict, dropout: bool, generator: torch.Generator | None = None
    ) -> Tensor:
        """``mean ‖ε − eps(√ā_t·z0 + √(1−ā_t)·ε, t, table[y])‖²`` with ``z0 = s·μ + s·σ·ξ`` (module docstring)."""
        mean, std, labels = batch
        shape, device = mean.shape, mean.device
        z0 = mean + std * torch.randn(shape, generator=generator, device=device)
        t = torch.randint(0, self.hparams.timesteps, (shape[0],), generator=generator, device=device)
        noise = torch.randn(shape, generator=generator, device=device)
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
        labels = self.drop_labels(labels, generator) if dropout else labels
        return (self.predict_noise(denoiser, noisy, t, labels) - noise).square().mean()

    def training_step(self, batch: LatentBatch, batch_idx: int) -> Tensor:
        loss = self.loss(batch, self.denoiser, dropout=True)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Tensor, batch: LatentBatch, batch_idx: int) -> None:
        self.ema.update_parameters(self.denoiser)

    def validation_step(self, batch: LatentBatch, batch_idx: int) -> None:
        """Conditional loss of the EMA model with the same noise and timesteps at every validation."""
        generator = torch.Generator(self.device).manual_seed(batch_idx)
        self.log("val/ema_loss", self.loss(batch, self.ema.module, dropout=False, generator=generator), prog_bar=True)

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(
            self.denoiser.parameters(),
            self.hparams.lr,
            self.hparams.warmup_steps,
            int(self.trainer.estimated_stepping_batches),
        )

    def backbone(self) -> ClassConditionalLDM:
        """A :class:`ClassConditionalLDM` (on the CPU) of copies of the EMA UNet, its class table and the
        first stage."""
        denoiser = copy.deepcopy(self.ema.module).cpu()
        return ClassConditionalLDM(
            denoiser["unet"],
            copy.deepcopy(self.first_stage).cpu(),
            denoiser["class_embedding"],
            self.alphas_cumprod.cpu(),
            self.scale_factor,
            self.hparams.image_size,
        )

    def export(self, path: str | os.PathLike) -> None:
        """``ClassConditionalLDM.save_pretrained(path)`` of the EMA weights (load with ``from_pretrained``)."""
        self.backbone().save_pretrained(path)
