"""The demo classifiers' training module and models, on random tensors (no dataset, a few seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from ldce.classifiers import classifier
from ldce.demo.models import ARCHITECTURES, build, card_path, load
from ldce.training.classifier import ClassifierTraining, translate

TINY = {
    "fashion_cnn": {"channels": (8, 16), "blocks": (1, 1), "stem_width": 8},
    "fashion_convnext": {"depths": (1, 1, 1, 1), "dims": (16, 32, 32, 32)},
}


class RandomImages(LightningDataModule):
    """16 random [0, 1] images with fixed random labels, in one batch, for training, validation and test."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.data = TensorDataset(
            torch.rand(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=16)

    val_dataloader = test_dataloader = train_dataloader


class LossHistory(Callback):
    """Keeps the training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def trained(architecture: str, steps: int) -> tuple[ClassifierTraining, list[float]]:
    """A tiny ``architecture`` trained ``steps`` steps on :class:`RandomImages`, and its loss per step."""
    module = ClassifierTraining(
        architecture, TINY[architecture], lr=1e-2, warmup_fraction=0.1, label_smoothing=0.0, flip=False, max_shift=0
    )
    history = LossHistory()
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        callbacks=[history],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=RandomImages())
    return module, history.losses


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_training_overfits_a_tiny_batch(architecture):
    _, losses = trained(architecture, steps=25)
    assert len(losses) == 25
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_export_rebuilds_the_same_logits(architecture, tmp_path):
    module, _ = trained(architecture, steps=3)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module.eval()(images)
    path = tmp_path / "weights" / "model.safetensors"
    module.export(path)
    card = json.loads(card_path(path).read_text())
    assert card["architecture"] == architecture and card["parameters"] == sum(
        p.numel() for p in module.net.parameters()
    )
    assert card["test_accuracy"] is None and card["hyperparameters"]["lr"] == 1e-2
    with torch.no_grad():
        assert torch.equal(load(path)(images), expected)
        wrapped = classifier(class_path=card["class_path"], init_args=card["architecture_args"], checkpoint=str(path))
        assert torch.equal(wrapped(images), expected)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_models_map_images_to_logits_with_input_gradients(architecture):
    model = build(architecture).eval()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, 10)
    (gradient,) = torch.autograd.grad(logits[:, 3].sum(), images)
    assert gradient.shape == images.shape and torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_translate_shifts_with_zero_fill():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    shifted = translate(images, torch.tensor([[1, 0], [0, -2]]))
    assert torch.equal(shifted[0, 0, 1:], images[0, 0, :-1]) and shifted[0, 0, 0].eq(0).all()
    assert torch.equal(shifted[1, 0, :, :2], images[1, 0, :, 2:]) and shifted[1, 0, :, 2:].eq(0).all()


def test_augmentation_is_seeded_and_keeps_shapes():
    images = torch.rand(8, 3, 32, 32)
    first, second = (ClassifierTraining("fashion_cnn", TINY["fashion_cnn"], seed=3).augment(images) for _ in range(2))
    assert first.shape == images.shape and torch.equal(first, second) and not torch.equal(first, images)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="fashion_cnn"):
        build("resnet9000")
