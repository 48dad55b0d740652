"""The one place where float images in [0, 1] become 8-bit values and back.

``k = round(255 · clamp(x, 0, 1))``; reading an 8-bit file gives ``k / 255``. Everything that saves,
logs or scores images as saved goes through here, so that a metric computed during a run and the same
metric recomputed from the written PNGs see identical values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8_tensor(images: Tensor) -> Tensor:
    """``round(255·clamp(x, 0, 1))`` as uint8, same shape (any)."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def from_uint8(pixels: np.ndarray | Tensor) -> Tensor:
    """8-bit values ``k`` (any shape) as float32 ``k / 255``."""
    return torch.as_tensor(pixels).float() / 255


def quantise(images: Tensor) -> Tensor:
    """The values an 8-bit file of ``images`` holds, as float32 ``k / 255``, same shape."""
    return from_uint8(to_uint8_tensor(images))


def to_uint8(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] → ``(H, W, 3)`` uint8 array (``(H, W)`` → ``(H, W)``), for PIL and W&B."""
    pixels = to_uint8_tensor(image).cpu()
    return (pixels.permute(1, 2, 0) if pixels.ndim == 3 else pixels).numpy()


def read_image(path: Path) -> Tensor:
    """An 8-bit image file as ``(3, H, W)`` float32 ``k / 255`` (the inverse of :func:`to_uint8`)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).copy()
    return from_uint8(pixels).permute(2, 0, 1)
