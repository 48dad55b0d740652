"""A region constraint for one ``explain`` call: its inputs, the step hook that starts it and the composite
that finishes it (``ldce.method.region.hook``, ``ldce.method.region.composite``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldce.classifiers.logits import predict
from ldce.method.region.composite import UNCOMPOSITED, Composite, change_score, composite
from ldce.method.region.config import RegionConfig
from ldce.method.region.hook import RegionHook, estimate
from ldce.method.region.masks import latent_region, pixel_mask, sharpened
from ldce.method.schedule import DDIMGrid


@dataclass(frozen=True)
class RegionInputs:
    """What a region needs besides the images (``B`` samples).

    config: the region settings; masks: ``given`` regions ``(B, 1, H, W)`` in [0, 1] (1: may change);
    segmenter: ``segmentation``'s model, ``(images (B, 3, H, W), classes (B,)) → probabilities (B, H, W)``;
    sources: the classes to segment, int64 ``(B,)`` (default: the classifier's prediction on the originals).
    """

    config: RegionConfig
    masks: Tensor | None = None
    segmenter: nn.Module | None = None
    sources: Tensor | None = None

    def __post_init__(self) -> None:
        if self.config.source == "given" and self.masks is None:
            raise ValueError("region source 'given' needs a mask for every input (mask.png or a box)")
        if self.masks is not None and (self.masks.ndim != 4 or self.masks.shape[1] != 1):
            raise ValueError(f"region masks must be (B, 1, H, W), got {tuple(self.masks.shape)}")
        if self.config.source == "segmentation" and self.segmenter is None:
            raise ValueError("region source 'segmentation' needs a segmentation model (model.segmenter)")

    def rows(self, indices: list[int]) -> RegionInputs:
        """The inputs of the samples ``indices`` (a group of one ``explain`` call)."""
        masks = None if self.masks is None else self.masks[indices]
        return replace(self, masks=masks, sources=None if self.sources is None else self.sources[indices])


def _pixel_mask(inputs: RegionInputs, images: Tensor, classifier: nn.Module) -> Tensor | None:
    """The soft pixel mask ``(B, H, W)`` in [0, 1] of ``given`` and ``segmentation`` (``None`` for the others)."""
    if inputs.config.source == "given":
        return inputs.masks[:, 0].to(images.device).float()
    if inputs.config.source != "segmentation":
        return None
    with torch.no_grad():
        sources = predict(classifier(images)) if inputs.sources is None else inputs.sources.to(images.device)
        return sharpened(inputs.segmenter(images, sources), inputs.config.mask_alpha)


def start(
    inputs: RegionInputs, images: Tensor, classifier: nn.Module, z0: Tensor, xi: Tensor, grid: DDIMGrid
) -> RegionHook:
    """The step hook of a group: images ``(B, 3, H, W)``; z0, xi ``(B, C, h, w)``. A fixed region's pixels
    at or above ``threshold`` are the hard limit of its composite."""
    config, mask = inputs.config, _pixel_mask(inputs, images, classifier)
    fixed = None if mask is None else latent_region(mask, tuple(z0.shape[-2:]), config.threshold, config.dilation)
    limit = None if mask is None else (mask >= config.threshold)[:, None]
    return RegionHook(estimate(config, fixed), config.blend, config.warmup, z0, xi, grid, limit)


def finish(
    config: RegionConfig,
    hook: RegionHook,
    images: Tensor,
    counterfactuals: Tensor,
    targets: Tensor,
    classifier: nn.Module,
) -> Composite:
    """The final images, the pixel region each used and its growth (see ``ldce.method.region.composite``)."""
    size = tuple(images.shape[-2:])
    if not config.composite:
        region = hook.applied if hook.applied is not None else hook.estimate.region()
        return Composite(counterfactuals, pixel_mask(region, size, 0), torch.full_like(targets, UNCOMPOSITED))
    source = F.interpolate(hook.estimate.score()[:, None].float(), size=size, mode="bilinear", align_corners=False)
    if hook.applied is not None:  # blended: nothing outside the applied region may change
        source = source * pixel_mask(hook.applied, size, 0)
    score = change_score(images, counterfactuals, source)
    ladder = (config.composite_share, config.growth, config.confidence)
    return composite(images, counterfactuals, score, targets, classifier, config.feather, *ladder, hook.limit)
