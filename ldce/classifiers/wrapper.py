"""``f`` as LDCE sees it: a frozen, always-eval module on [0, 1] RGB images, differentiable w.r.t. them.

A :class:`ClassifierWrapper` puts differentiable preprocessing (resize, centre crop, grayscale,
normalisation) in front of any ``nn.Module``, freezes it and keeps it in eval mode, so that gradients
flow to the input image only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from ldce.checks import check_fields

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)
Channels = Literal["rgb", "grayscale"]
Interpolation = Literal["bilinear", "bicubic"]


@dataclass(frozen=True)
class Preprocessing:
    """How [0, 1] RGB images become the classifier's input; each step is skipped when its field is ``None``.

    Args:
        resize: shorter side in pixels after resizing (no antialiasing, as torchvision's
            ``resize(..., antialias=False)``).
        crop: side of the centre crop in pixels (as torchvision's ``center_crop``).
        mean: per-channel mean subtracted after cropping (given together with ``std``).
        std: per-channel standard deviation divided by.
        channels: ``rgb``, or ``grayscale`` for one luminance channel (ITU-R 601 weights).
        interpolation: ``bilinear`` or ``bicubic`` resizing.
    """

    resize: PositiveInt | None = None
    crop: PositiveInt | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: Channels = "rgb"
    interpolation: Interpolation = "bilinear"

    def __post_init__(self) -> None:
        check_fields(self)
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std must be given together")


IMAGENET_PREPROCESSING = Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
"""torchvision's ImageNet evaluation transform: shorter side 256, centre crop 224, ImageNet statistics."""


class Preprocess(nn.Module):
    """Differentiable ``[0, 1]`` RGB ``(B, 3, H, W)`` → classifier input ``(B, C, h, w)``, per :class:`Preprocessing`.

    In order: resize the shorter side, centre-crop, convert to one luminance channel, then ``(x − mean) / std``.
    """

    def __init__(self, settings: Preprocessing | None = None) -> None:
        super().__init__()
        settings = settings or Preprocessing()
        self.settings = settings
        self.resize, self.crop = settings.resize, settings.crop
        self.channels, self.interpolation = settings.channels, settings.interpolation
        self.normalise = settings.mean is not None
        self.register_buffer("mean", torch.tensor(settings.mean or (0.0,)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(settings.std or (1.0,)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(h, w)`` of the resize: shorter side ``resize``, longer side scaled and truncated."""
        if self.resize is None or min(height, width) == self.resize:
            return height, width
        if height <= width:
            return self.resize, int(self.resize * width / height)
        return int(self.resize * height / width), self.resize

    def scale(self, side: int) -> float:
        """How much the resize enlarges (> 1) or shrinks (< 1) a ``side × side`` image."""
        return self.resized_size(side, side)[0] / side

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns ``(B, C, h, w)`` with C = 3 or 1."""
        size = self.resized_size(*images.shape[-2:])
        if size != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=size, mode=self.interpolation, align_corners=False, antialias=False)
        if self.crop is not None:
            images = self._centre_crop(images)
        if self.channels == "grayscale":
            images = (images * self.luma.to(images.dtype)).sum(dim=1, keepdim=True)
        if self.normalise:
            images = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return images

    def _centre_crop(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        if self.crop > min(height, width):
            raise ValueError(f"cannot centre-crop {self.crop}×{self.crop} from a {height}×{width} image")
        top, left = int(round((height - self.crop) / 2.0)), int(round((width - self.crop) / 2.0))
        return images[..., top : top + self.crop, left : left + self.crop]


class ClassifierWrapper(nn.Module):
    """``f(x)``: frozen, always-eval classifier on [0, 1] RGB images, differentiable w.r.t. ``x``.

    ``binary_index`` picks one logit of a multi-logit attribute head (e.g. smile in a
    gender/smile/young DenseNet); the output is then ``(B,)`` instead of ``(B, K)``.
    """

    def __init__(
        self, model: nn.Module, preprocessing: Preprocessing | None = None, binary_index: int | None = None
    ) -> None:
        super().__init__()
        self.preprocess = Preprocess(preprocessing)
        for parameter in model.parameters():  # not model.requires_grad_(): TorchScript modules lack it
            parameter.requires_grad_(False)
        self.model = model
        self.binary_index = binary_index
        self.train(False)

    def train(self, mode: bool = True) -> ClassifierWrapper:
        """Ignore ``mode``: BatchNorm and Dropout of the classifier stay in eval mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns logits ``(B, K)``, or ``(B,)`` with ``binary_index``."""
        logits = self.model(self.preprocess(images))
        return logits if self.binary_index is None else logits[:, self.binary_index]


RESCALE_LIMIT = 2.0
"""A preprocessing that resizes images by more than this factor (either way) is worth a warning."""


def rescale_warning(classifier: nn.Module, side: int) -> str | None:
    """A warning when ``classifier``'s preprocessing resizes the ``side``-pixel images it is given by more
    than :data:`RESCALE_LIMIT` × — e.g. timm's ImageNet data config on 32-pixel images — else ``None``."""
    if not isinstance(classifier, ClassifierWrapper):
        return None
    scale = classifier.preprocess.scale(side)
    if 1 / RESCALE_LIMIT <= scale <= RESCALE_LIMIT:
        return None
    resized = classifier.preprocess.resized_size(side, side)[0]
    return (
        f"the classifier's preprocessing resizes the {side}-pixel images to {resized} pixels ({scale:.3g}×): "
        "if it was trained on other sizes, set its preprocessing (resize, crop) to how it was trained"
    )
