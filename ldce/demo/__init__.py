"""ldce's built-in demo: small models genuinely trained on Fashion-MNIST, shipped inside the package.

- :func:`backbone`: a class-conditional latent diffusion model (f4 KL autoencoder, UNet with a class
  table whose last row is the null class) in the format of the paper's ImageNet model;
- :func:`classifier`: the classifier to be explained (a small ResNet);
- :func:`independent_classifier`: a small ConvNeXt trained separately (another seed), used only to judge whether a
  counterfactual looks like its target to another model;
- :data:`DEMO_SHARD`: 64 Fashion-MNIST *test* images with paired targets (``ldce.demo.data``).

``MODEL_CARD.md`` next to this file says how each was trained and how well it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.classifiers import ClassifierWrapper
from ldce.datamodules.fashion_mnist import CLASS_NAMES, DEBIAN_ROOT, load_split
from ldce.datamodules.webdataset import WebDatasetDataModule
from ldce.demo import models
from ldce.demo.data import TARGETS, select
from ldce.metrics.features import PenultimateFeatures

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights"
DEMO_SHARD = HERE / "data" / "fashion_mnist_demo.tar"
__all__ = [
    "CLASS_NAMES",
    "DemoShard",
    "DEMO_SHARD",
    "TARGETS",
    "backbone",
    "classifier",
    "demo_batches",
    "heldout_batches",
    "independent_classifier",
    "judge_features",
]

Batch = tuple[list[str], Tensor, Tensor, Tensor]


def backbone() -> ClassConditionalLDM:
    """The demo's latent diffusion model (32×32 RGB images, 8×8 latents, 10 classes + null)."""
    return ClassConditionalLDM.from_pretrained(WEIGHTS / "fashion_ldm")


def classifier() -> ClassifierWrapper:
    """The classifier to be explained: [0, 1] RGB 32×32 → 10 logits (normalisation inside)."""
    return ClassifierWrapper(models.load(WEIGHTS / "classifier" / "model.safetensors"))


def independent_classifier() -> ClassifierWrapper:
    """The judge: another architecture family and seed; never used for guidance."""
    return ClassifierWrapper(models.load(WEIGHTS / "independent" / "model.safetensors"))


def judge_features() -> PenultimateFeatures:
    """The independent classifier's penultimate features: the demo's FID space (not Inception)."""
    return PenultimateFeatures(models.load(WEIGHTS / "independent" / "model.safetensors"))


class DemoShard(WebDatasetDataModule):
    """The demo's 64 Fashion-MNIST test images with their targets, at 32 px, wherever ldce is installed.

    Args:
        urls: shards to read instead (default: the shard that ships with ldce).
        batch_size: samples per batch.
        num_workers: dataloader worker processes (0: load in the main process).
    """

    def __init__(self, urls: str | list[str] | None = None, batch_size: int = 16, num_workers: int = 0) -> None:
        super().__init__(urls or str(DEMO_SHARD), batch_size=batch_size, num_workers=num_workers, image_size=32)


def demo_batches(batch_size: int = 16) -> Iterator[Batch]:
    """``(keys, images (B, 3, 32, 32), labels, targets)`` of the demo shard."""
    for batch in DemoShard(batch_size=batch_size).predict_dataloader():
        yield batch.keys, batch.images, batch.labels, batch.targets


def heldout_batches(
    per_class: int, batch_size: int = 16, start: int = 5000, root: str = DEBIAN_ROOT
) -> Iterator[Batch]:
    """Test images from index ``start`` on (disjoint from the demo shard), ``per_class`` per source class."""
    images, labels = load_split(root, "test")
    indices = torch.tensor(select(labels, per_class, start))
    for chunk in indices.split(batch_size):
        targets = torch.tensor([TARGETS[int(y)] for y in labels[chunk]])
        yield [f"fmnist_test_{i:05d}" for i in chunk.tolist()], images[chunk], labels[chunk], targets
