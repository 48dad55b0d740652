"""The pixel-space composite of a region-constrained counterfactual, and how it keeps the flip.

For growth ``k = 0, 1, …, K`` (``K = growth``) and the samples not yet settled:

    M_k = pixel_mask(dilate(R, k), feather)                 (B, 1, H, W)
    x_k = M_k ⊙ x_cf + (1 − M_k) ⊙ x                         pixels outside M_k are the original's, exactly
    settle the samples whose classifier decision on x_k is the target, with x_k

A sample none of whose composites reaches the target keeps the uncomposited ``x_cf`` (``growth`` −1), unless
``x_cf`` misses the target too: then the closer ``x_0`` is kept (``growth`` 0), as nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ldce.classifiers.logits import predict
from ldce.method.region.masks import dilate, pixel_mask

UNCOMPOSITED = -1


@dataclass(frozen=True)
class Composite:
    """images: the final images ``(B, 3, H, W)``; masks: the ``M`` each used ``(B, 1, H, W)`` (all ones
    where uncomposited); growth: int64 ``(B,)``, the ``k`` used, or −1 where uncomposited."""

    images: Tensor
    masks: Tensor
    growth: Tensor


@torch.no_grad()
def composite(
    images: Tensor,
    counterfactuals: Tensor,
    region: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    feather: int,
    growth: int,
) -> Composite:
    """The composite of the module docstring; images / counterfactuals ``(B, 3, H, W)`` in [0, 1], region
    bool ``(B, h, w)``, targets int64 ``(B,)``."""
    size = tuple(images.shape[-2:])
    final, masks = counterfactuals.clone(), torch.ones_like(images[:, :1])
    used = torch.full_like(targets, UNCOMPOSITED)
    flipped = predict(classifier(counterfactuals)) == targets
    pending = torch.ones_like(targets, dtype=torch.bool)
    for k in range(growth + 1):
        mask = pixel_mask(dilate(region, k), size, feather)
        candidate = mask * counterfactuals + (1 - mask) * images
        settled = pending & ((predict(classifier(candidate)) == targets) | (~flipped & (k == 0)))
        final[settled], masks[settled], used[settled] = candidate[settled], mask[settled], k
        pending &= ~settled
        if not pending.any():
            break
    return Composite(final, masks, used)
