"""Region masks as pure functions of tensors: estimated at latent resolution ``(B, h, w)`` (bool), applied
in pixels ``(B, 1, H, W)`` (float in [0, 1]).

    consensus:     R = dilate(mean₃ₓ₃(share) ≥ τ, r)              share: steps in consensus / steps so far
    gradient:      R = dilate(|∂L_c/∂z|₁ ≥ its top-q quantile, r)   per sample (MaskDiME's adaptive mask)
    segmentation:  m = (p − min p)/(max p − min p),  R = dilate(σ(2α(m − ½)) ≥ τ, r)    per image
    pixels:        M = box_f(upsample(R)):  1 deep inside, exactly 0 farther than f pixels out
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dilate(region: Tensor, radius: int) -> Tensor:
    """``(B, h, w)`` bool grown by ``radius`` pixels in every direction (a square neighbourhood)."""
    if radius == 0:
        return region
    grown = F.max_pool2d(region[:, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return grown[:, 0] > 0


def consensus_region(share: Tensor, threshold: float, radius: int) -> Tensor:
    """``share`` ``(B, h, w)`` in [0, 1] (steps in consensus so far) → the region, bool ``(B, h, w)``."""
    smoothed = F.avg_pool2d(share[:, None].float(), 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    return dilate(smoothed >= threshold, radius)


def top_share_region(saliency: Tensor, share: float, radius: int) -> Tensor:
    """The ``share`` of latent pixels with the largest ``saliency`` ``(B, h, w)``, per sample, dilated."""
    flat = saliency.flatten(1).float()
    count = max(1, round(share * flat.shape[1]))
    kth = flat.topk(count, dim=1).values[:, -1:]
    return dilate((flat >= kth).view_as(saliency), radius)


def sharpened(probabilities: Tensor, alpha: float) -> Tensor:
    """``σ(2α(m − ½))`` of the per-image min–max normalised ``probabilities`` ``(B, H, W)`` (the original's
    ``mask_alpha`` sharpening; it normalised over the whole batch, here each image on its own)."""
    flat = probabilities.flatten(1).float()
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    normalised = (flat - low) / (high - low).clamp_min(1e-12)
    return torch.sigmoid(2 * alpha * (normalised - 0.5)).view_as(probabilities)


def latent_region(mask: Tensor, size: tuple[int, int], threshold: float, radius: int) -> Tensor:
    """A pixel mask ``(B, H, W)`` in [0, 1] → the latent pixels ``(B, h, w)`` whose area mean reaches ``threshold``."""
    pooled = F.interpolate(mask[:, None].float(), size=size, mode="area")[:, 0]
    return dilate(pooled >= threshold, radius)


def pixel_mask(region: Tensor, size: tuple[int, int], feather: int) -> Tensor:
    """The latent region ``(B, h, w)`` in pixels ``(B, 1, H, W)`` float: nearest upsampling, then a
    ``(2f + 1)``-wide box blur, so ``M`` is 1 deep inside and exactly 0 beyond ``f`` pixels out."""
    mask = F.interpolate(region[:, None].float(), size=size, mode="nearest")
    if feather == 0:
        return mask
    return F.avg_pool2d(mask, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False).clamp(0, 1)
