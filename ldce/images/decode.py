"""Encoded image files → ``(3, size, size)`` float tensors in [0, 1] RGB, as a person sees them.

The image is decoded fully by PIL (a truncated file raises unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
was set), converted to RGB (grayscale and palette expanded; transparency composited onto white),
then resized (bicubic): ``center_crop`` resizes the shorter side to ``size`` and crops the centre,
``resize`` squashes to ``size²``.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import torch
from PIL import Image

ResizeMode = Literal["center_crop", "resize"]
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of ``image``; transparent pixels (alpha channel or ``transparency`` info) over white."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def fit(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    """``image`` resized to ``size × size``: squashed (``resize``) or shorter side + centre crop."""
    if mode == "resize":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    width, height = image.size
    scale = size / min(width, height)
    width, height = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (width - size) // 2, (height - size) // 2
    return image.resize((width, height), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))


def decode_image(data: bytes, size: int, mode: ResizeMode) -> torch.Tensor:
    """Encoded image bytes → ``FloatTensor (3, size, size)`` in [0, 1]."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decode everything now, so that truncated data raises here
        rgb = fit(to_rgb(image), size, mode)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
