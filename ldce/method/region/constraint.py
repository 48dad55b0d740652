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


def _fixed_region(inputs: RegionInputs, images: Tensor, classifier: nn.Module, size: tuple[int, int]) -> Tensor | None:
    """The latent region ``(B, h, w)`` of ``given`` and ``segmentation`` (``None`` for the others)."""
    config = inputs.config
    if config.source == "given":
        return latent_region(inputs.masks[:, 0].to(images.device), size, config.threshold, config.dilation)
    if config.source != "segmentation":
        return None
    with torch.no_grad():
        sources = predict(classifier(images)) if inputs.sources is None else inputs.sources.to(images.device)
        probabilities = inputs.segmenter(images, sources)
    return latent_region(sharpened(probabilities, config.mask_alpha), size, config.threshold, config.dilation)


def start(
    inputs: RegionInputs, images: Tensor, classifier: nn.Module, z0: Tensor, xi: Tensor, grid: DDIMGrid
) -> RegionHook:
    """The step hook of a group: images ``(B, 3, H, W)``; z0, xi ``(B, C, h, w)``."""
    fixed = _fixed_region(inputs, images, classifier, tuple(z0.shape[-2:]))
    config = inputs.config
    return RegionHook(estimate(config, fixed), config.blend, config.warmup, z0, xi, grid)


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
    return composite(images, counterfactuals, score, targets, classifier, config.feather, *ladder)
