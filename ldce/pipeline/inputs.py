"""What :class:`ldce.pipeline.LDCEPipeline` accepts, checked and converted, with messages naming the argument.

Images (``images``) become one float32 ``(B, 3, S, S)`` tensor in [0, 1] for a backbone of side ``S``:

- PIL images (one or a list), any mode: shown as a viewer shows them (transparency over white, EXIF
  orientation, 16-bit gray) and fitted to ``S`` — shorter side to ``S``, centre crop — as
  ``ldce explain`` fits files;
- torch tensors ``(3, S, S)`` or ``(B, 3, S, S)``, float in [0, 1] or uint8;
- NumPy arrays ``(S, S, 3)`` or ``(B, S, S, 3)`` (channels last, as images are stored), float in
  [0, 1] or uint8; or a list of tensors or arrays.

Arrays and tensors are model inputs: they must already be ``S × S`` and in range — nothing is resized
or rescaled silently. Targets (``targets``) are a class index or name for every image, or one per image
(a list or an int64 tensor ``(B,)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ldce.classifiers.names import class_of
from ldce.images import image_tensor


def _range_hint(low: float, high: float) -> str:
    """What to do about float images whose values span ``[low, high]``."""
    if low >= 0 and high <= 255:
        return ": divide by 255 (or pass uint8)"
    if low >= -1 and high <= 1:
        return ": map [-1, 1] to [0, 1] with (x + 1) / 2"
    return ""


def _checked(pixels: Tensor, side: int, layout: str) -> Tensor:
    """``(B, 3, H, W)`` pixels (uint8 or float) → float32 in [0, 1], refusing other sizes and ranges."""
    if pixels.dtype == torch.uint8:
        pixels = pixels.float() / 255
    elif not pixels.is_floating_point():
        raise ValueError(f"images must be float in [0, 1] or uint8, got {pixels.dtype}")
    if pixels.shape[1] != 3:
        raise ValueError(f"images must have 3 channels (RGB) in layout {layout}, got shape {tuple(pixels.shape)}")
    if tuple(pixels.shape[-2:]) != (side, side):
        height, width = pixels.shape[-2:]
        raise ValueError(
            f"images are {height}×{width}, but the backbone works on {side}×{side}: resize them, or pass PIL "
            "images to have them fitted"
        )
    pixels = pixels.float()
    if not torch.isfinite(pixels).all():
        raise ValueError("images contain NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        raise ValueError(f"images must lie in [0, 1], got [{low:g}, {high:g}]{_range_hint(low, high)}")
    return pixels


def _batched(value: Tensor, ndim: int, layout: str) -> Tensor:
    if value.ndim == ndim - 1:
        return value[None]
    if value.ndim != ndim:
        raise ValueError(f"images must be {layout} or a batch of them, got shape {tuple(value.shape)}")
    return value


def as_images(images: Any, side: int) -> Tensor:
    """``images`` (see the module docstring) as float32 ``(B, 3, side, side)`` in [0, 1]; ``ValueError``
    naming ``images`` for anything else."""
    if isinstance(images, (Image.Image, Tensor, np.ndarray)):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, str) or not images:
        raise ValueError(f"images must be PIL images, arrays or tensors (one or a non-empty list), got {images!r:.80}")
    parts = []
    for image in images:
        if isinstance(image, Image.Image):
            parts.append(image_tensor(image, side, "center_crop")[None])
        elif isinstance(image, Tensor):
            parts.append(_checked(_batched(image.detach().cpu(), 4, "(3, H, W)"), side, "(3, H, W)"))
        elif isinstance(image, np.ndarray):
            array = torch.from_numpy(np.array(_batched_array(image)))  # a copy: the caller keeps theirs
            parts.append(_checked(array.permute(0, 3, 1, 2), side, "(H, W, 3)"))
        else:
            raise ValueError(f"images must be PIL images, NumPy arrays or torch tensors, got {type(image).__name__}")
    return torch.cat(parts)


def _batched_array(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return image[None]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"image arrays must be (H, W, 3) or (B, H, W, 3), got shape {image.shape}")
    return image


def as_targets(targets: Any, count: int, names: Sequence[str] | None, num_classes: int) -> Tensor:
    """``targets`` for ``count`` images as int64 ``(count,)``: one class (index or name) for all, or one per
    image; ``ValueError`` naming ``targets`` for a wrong count, type, name or a class outside
    ``[0, num_classes)``."""
    if isinstance(targets, Tensor):
        if targets.is_floating_point() or targets.dtype == torch.bool or targets.ndim > 1:
            raise ValueError(
                f"targets must be class indices (int64, shape (B,)), got {targets.dtype} {tuple(targets.shape)}"
            )
        targets = targets.tolist()
    values = [targets] * count if isinstance(targets, (int, str)) else targets
    if not isinstance(values, Sequence) or len(values) != count:
        given = len(values) if isinstance(values, Sequence) else type(targets).__name__
        raise ValueError(f"targets: give one class for every image or one per image ({count}), got {given}")
    classes = [class_of(value, names, "targets:") for value in values]
    outside = [c for c in classes if c >= num_classes]
    if outside:
        raise ValueError(f"targets: {outside[0]} is outside the classifier's {num_classes} classes [0, {num_classes})")
    return torch.tensor(classes, dtype=torch.int64)
