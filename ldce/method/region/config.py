"""``RegionConfig``: where LDCE may change an image — the region constraint of minimal counterfactuals.

With a region, denoising keeps the original outside it (``ldce.method.region.hook``) and the final image
is the original outside a feathered version of it (``ldce.method.region.composite``). Sources:

- ``none``: no region, LDCE as published (the default; parity with the original unchanged);
- ``consensus``: where the classifier's gradient kept agreeing with the diffusion model — the share of
  guided steps so far in which a latent pixel passed the consensus test, smoothed (3 × 3 mean) and
  above ``threshold``; needs ``guidance: projected``;
- ``gradient``: where the classifier's gradient is largest — the top ``share`` of latent pixels by
  ``|∂L_c/∂z|`` summed over channels, re-estimated every step (adaptive, as MaskDiME);
- ``given``: a mask that comes with each input (``mask.png`` of a shard sample, or a ``box`` in its JSON);
- ``segmentation``: a text-prompted segmentation model (CLIPSeg) prompted with the source class name,
  min–max normalised per image and sharpened by ``sigmoid(2·mask_alpha·(m − ½))`` (the original
  project's ``masked_guidance``), above ``threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, OpenUnitInterval, PositiveFloat

from ldce.checks import check_fields

RegionSource = Literal["none", "consensus", "gradient", "given", "segmentation"]


@dataclass(frozen=True)
class RegionConfig:
    """Where the counterfactual may differ from the original (see the module docstring).

    Args:
        source: ``none``, ``consensus``, ``gradient``, ``given`` or ``segmentation``.
        threshold: ``consensus``: the share of guided steps a latent pixel must have passed the consensus
            test; ``segmentation`` and ``given``: the mask value (in [0, 1]) from which a pixel is inside
            (0.1 suits consensus on the demo; use 0.5 for masks).
        share: ``gradient``: the share of latent pixels with the largest classifier gradient.
        dilation: latent pixels the region grows by (square neighbourhood) before it is applied while
            denoising (the composite of ``given`` and ``segmentation`` stays inside their pixels).
        blend: keep the original's trajectory outside the region during denoising (RePaint-style);
            false: the region acts through the composite only.
        warmup: guided steps before the region is applied during denoising (unconstrained until then;
            the final latent keeps the original outside the region whatever ``warmup`` is).
        composite: compose the final image as ``M ⊙ x_cf + (1 − M) ⊙ x`` with ``M`` the top share of the
            changed pixels inside the region, feathered, the share growing until the classifier is
            convinced (``ldce.method.region.composite``); false: the region constrains the latent only
            (the decoder may still change pixels outside it). ``blend`` or ``composite`` must be true.
        feather: width in pixels of the soft edge of ``M`` (a box blur: ``M`` is exactly 0 farther out).
        composite_share: the share of the changed pixels of the region the composite starts from.
        growth: the composite's ladder has ``growth + 1`` geometric shares, from ``composite_share`` up to
            the whole region (0: ``composite_share`` only, else the uncomposited counterfactual).
        confidence: the probability of the target (also the classifier's argmax) the composite must
            reach (else the largest rung that flips, else the uncomposited counterfactual — for ``given``
            and ``segmentation``, whose pixels at or above ``threshold`` are a hard limit, the change inside
            the whole region).
            Higher: larger changes, never smaller.
        mask_alpha: ``segmentation``: the sharpness of the sigmoid (the original's ``mask_alpha``).
    """

    source: RegionSource = "none"
    threshold: ClosedUnitInterval = 0.1
    share: OpenUnitInterval = 0.25
    dilation: NonNegativeInt = 1
    blend: bool = True
    warmup: NonNegativeInt = 3
    composite: bool = True
    feather: NonNegativeInt = 1
    composite_share: OpenUnitInterval = 0.05
    growth: NonNegativeInt = 10
    confidence: ClosedUnitInterval = 0.7
    mask_alpha: PositiveFloat = 5.0

    def __post_init__(self) -> None:
        check_fields(self)
        if self.active and not (self.blend or self.composite):
            raise ValueError(
                f"region.blend and region.composite are both false: a {self.source!r} region would constrain "
                "nothing (set one true, or source: none)"
            )

    @property
    def active(self) -> bool:
        """Whether a region constrains the counterfactual."""
        return self.source != "none"
