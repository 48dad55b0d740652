"""The demo's Fashion-MNIST classifiers, built from timm blocks, and their loader.

Both take ``(B, 3, 32, 32)`` RGB images in [0, 1] (the 28×28 digits padded by 2 pixels, grey repeated
over three channels, as :mod:`ldce.datamodules.fashion_mnist` yields them) and return ``(B, 10)``
logits; the normalisation is part of the module, so LDCE wraps them without preprocessing.

- :func:`fashion_cnn`: a small ResNet (timm ``BasicBlock`` stages), the classifier to be explained;
- :func:`fashion_convnext`: a small ConvNeXt (timm ``ConvNeXt``: patchify stem, depthwise 7×7 blocks,
  LayerNorm, GELU), another architecture family trained with another seed and data order, used
  only to judge counterfactuals.

An exported model is a safetensors file with a JSON of the same stem next to it that names the
constructor and its arguments; :func:`load` rebuilds it from the pair.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from timm.models.convnext import ConvNeXt
from timm.models.resnet import BasicBlock, make_blocks
from torch import Tensor, nn

from ldce.checkpoints import load_strict, read_tensors

# Pixel statistics of the 60,000 padded training images (all three channels are equal).
FASHION_MEAN = 0.219
FASHION_STD = 0.332
NUM_CLASSES = 10


class Normalised(nn.Module):
    """``net((x − FASHION_MEAN) / FASHION_STD)``: a network on [0, 1] images."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns the network's logits."""
        return self.net((images - FASHION_MEAN) / FASHION_STD)


class SmallResNet(nn.Module):
    """3×3 conv stem, 2×2 max-pool, timm ``BasicBlock`` stages (stride 2 after the first), average pool, linear."""

    def __init__(self, channels: tuple[int, ...], blocks: tuple[int, ...], stem_width: int, num_classes: int) -> None:
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError(f"one block count per stage: got channels {channels} and blocks {blocks}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        stages, _ = make_blocks((BasicBlock,) * len(channels), channels, blocks, inplanes=stem_width)
        self.stages = nn.Sequential(*(stage for _, stage in stages))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], num_classes))

    def forward(self, images: Tensor) -> Tensor:
        """images: normalised ``(B, 3, H, W)``. Returns ``(B, num_classes)`` logits."""
        return self.head(self.stages(self.stem(images)))


def fashion_cnn(
    channels: tuple[int, ...] = (32, 64, 128),
    blocks: tuple[int, ...] = (1, 1, 1),
    stem_width: int = 16,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """The classifier to be explained: a small ResNet, ~0.3M parameters with the defaults."""
    return Normalised(SmallResNet(tuple(channels), tuple(blocks), stem_width, num_classes))


def fashion_convnext(
    depths: tuple[int, ...] = (1, 2, 2, 1),
    dims: tuple[int, ...] = (32, 64, 96, 128),
    patch_size: int = 2,
    kernel_size: int = 7,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """The judge: a small timm ``ConvNeXt`` (patchify stem, 7×7 depthwise blocks, LayerNorm), ~0.47M parameters."""
    convnext = ConvNeXt(
        in_chans=3,
        num_classes=num_classes,
        depths=tuple(depths),
        dims=tuple(dims),
        kernel_sizes=kernel_size,
        patch_size=patch_size,
    )
    return Normalised(convnext)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fashion_cnn": fashion_cnn, "fashion_convnext": fashion_convnext}


def build(architecture: str, architecture_args: dict[str, Any] | None = None) -> nn.Module:
    """``ARCHITECTURES[architecture](**architecture_args)``; a ``ValueError`` lists the known names."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown demo architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**(architecture_args or {}))


def card_path(weights_path: str | Path) -> Path:
    """The JSON card next to an exported weights file: same folder and stem, ``.json``."""
    return Path(weights_path).with_suffix(".json")


def load(weights_path: str | Path) -> nn.Module:
    """Rebuild an exported model from its safetensors file and JSON card; returned in eval mode."""
    card = json.loads(card_path(weights_path).read_text())
    model = build(card["architecture"], card["architecture_args"])
    what = f"demo model {card['architecture']!r}"
    load_strict(model, read_tensors(weights_path, what), weights_path, what)
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Share of ``images`` that ``model`` classifies as ``labels`` (evaluated in batches, no gradients)."""
    correct = sum(
        (model(images[i : i + batch_size]).argmax(dim=-1) == labels[i : i + batch_size]).sum().item()
        for i in range(0, len(labels), batch_size)
    )
    return correct / len(labels)
