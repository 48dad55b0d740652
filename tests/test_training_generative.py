"""The demo LDM's training modules on tiny models and random tensors (no dataset, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.callbacks.export import ExportWeights
from ldce.training.autoencoder import AutoencoderTraining
from ldce.training.diffusion import LatentDiffusionTraining

IMAGE_SIZE = 16  # two autoencoder levels: f = 2, latents 3×8×8


def tiny_autoencoder() -> AutoencoderTraining:
    torch.manual_seed(0)
    return AutoencoderTraining(
        block_out_channels=(8, 16),
        latent_channels=3,
        norm_num_groups=4,
        image_size=IMAGE_SIZE,
        lr=1e-2,
        warmup_steps=1,
        scale_images=8,
    )


def smooth_images(count: int, seed: int = 0) -> torch.Tensor:
    """Random blobs in [0, 1], ``(count, 3, 16, 16)``: upsampled 4×4 noise."""
    noise = torch.rand(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(noise, size=IMAGE_SIZE, mode="bilinear").expand(-1, 3, -1, -1).contiguous()


@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory) -> Path:
    """A tiny exported first stage with a scaling factor other than 1."""
    path = tmp_path_factory.mktemp("ae") / "first_stage"
    module = tiny_autoencoder()
    module.vae.register_to_config(scaling_factor=module.estimate_scale_factor(smooth_images(8)))
    module.export(path)
    return path


def tiny_diffusion(autoencoder_dir: Path, **overrides) -> LatentDiffusionTraining:
    torch.manual_seed(0)
    args = {
        "model_channels": 32,
        "channel_mult": (1,),
        "attention_resolutions": (1,),
        "num_head_channels": 16,
        "context_dim": 16,
        "lr": 2e-3,
        "warmup_steps": 1,
        "image_size": IMAGE_SIZE,
    } | overrides
    return LatentDiffusionTraining(str(autoencoder_dir), **args)


def optimise(loss_of, parameters, steps: int, lr: float) -> tuple[float, float]:
    """``(first loss, last loss)`` of ``steps`` Adam steps on ``loss_of()``."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_of()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def test_autoencoder_overfits_one_batch():
    module = tiny_autoencoder()
    images = smooth_images(4)
    first, last = optimise(lambda: module.loss(images)["loss"], module.parameters(), steps=40, lr=1e-2)
    assert last < 0.5 * first, (first, last)


def test_diffusion_loss_decreases_on_one_batch(autoencoder_dir):
    module = tiny_diffusion(autoencoder_dir)
    mean, std = module.encode(smooth_images(8))
    batch = (mean, std, torch.arange(8) % 10)

    def loss_of():
        return module.loss(batch, module.denoiser, dropout=False, generator=torch.Generator().manual_seed(0))

    first, last = optimise(loss_of, module.denoiser.parameters(), steps=30, lr=2e-3)
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_classifier_free_dropout_uses_the_null_row_at_the_configured_rate(autoencoder_dir, rate):
    module = tiny_diffusion(autoencoder_dir, uncond_prob=rate)
    labels = torch.arange(20000) % 10
    dropped = module.drop_labels(labels, torch.Generator().manual_seed(1))
    is_null = dropped == module.null_class
    assert module.null_class == 10 and module.denoiser["class_embedding"].num_embeddings == 11
    assert abs(is_null.float().mean().item() - rate) < 4 * (rate * (1 - rate) / len(labels)) ** 0.5
    assert torch.equal(dropped[~is_null], labels[~is_null])
    assert torch.equal(tiny_diffusion(autoencoder_dir, uncond_prob=0.0).drop_labels(labels), labels)


def test_export_round_trip_gives_identical_eps_encode_and_decode(autoencoder_dir, tmp_path):
    module = tiny_diffusion(autoencoder_dir)
    with torch.no_grad():  # make the EMA differ from the initial weights
        for param in module.denoiser.parameters():
            param.add_(0.01 * torch.randn_like(param))
    module.ema.update_parameters(module.denoiser)
    module.export(tmp_path / "ldm")
    loaded = ClassConditionalLDM.from_pretrained(tmp_path / "ldm")
    assert loaded.scale_factor == pytest.approx(AutoencoderKL.from_pretrained(autoencoder_dir).config.scaling_factor)
    assert loaded.null_class == 10 and loaded.image_size == IMAGE_SIZE
    assert torch.equal(loaded.alphas_cumprod, module.alphas_cumprod)
    z, t, y = torch.randn(4, 3, 8, 8), torch.tensor([1, 250, 500, 999]), torch.tensor([0, 3, 9, 2])
    cond, _ = loaded.conditioning(y)
    with torch.no_grad():
        assert torch.equal(loaded.eps(z, t, cond), module.predict_noise(module.ema.module, z, t, y))
        images = smooth_images(4)
        assert torch.equal(loaded.encode(images), module.encode(images)[0])
        expected = (
            module.first_stage.decode((1.0 / module.scale_factor) * z).sample + 1
        ) / 2  # (1/s)·z as the backbone
        assert torch.equal(loaded.decode(z), expected)


class RandomImages(LightningDataModule):
    """``(images, labels)`` sets shaped like ``FashionMNISTDataModule``'s, of random blobs."""

    def setup(self, stage: str) -> None:
        self.train_set = TensorDataset(smooth_images(16), torch.arange(16) % 10)
        self.val_set = TensorDataset(smooth_images(8, seed=1), torch.arange(8) % 10)

    def map_sets(self, transform):
        self.train_set, self.val_set = transform(self.train_set), transform(self.val_set)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, 8, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, 8)


def fit(module, export_path: Path, root: Path) -> None:
    trainer = Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ExportWeights(str(export_path))],
    )
    trainer.fit(module, datamodule=RandomImages())


def test_fit_stores_the_scale_and_exports_both_stages(tmp_path):
    fit(tiny_autoencoder(), tmp_path / "ae", tmp_path)
    vae = AutoencoderKL.from_pretrained(tmp_path / "ae")
    assert vae.config.scaling_factor != 1.0 and vae.config.latent_channels == 3
    module = tiny_diffusion(tmp_path / "ae")
    fit(module, tmp_path / "ldm", tmp_path)
    assert int(module.ema.n_averaged) == 3
    loaded = ClassConditionalLDM.from_pretrained(tmp_path / "ldm")
    assert loaded.scale_factor == pytest.approx(vae.config.scaling_factor)
