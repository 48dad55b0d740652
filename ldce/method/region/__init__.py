"""Minimal counterfactuals: LDCE constrained to a region of the image (consensus, gradient, given or
segmentation), with the original kept outside it in the latent trajectory and in the final pixels."""

from ldce.method.region.composite import UNCOMPOSITED, Composite
from ldce.method.region.config import RegionConfig, RegionSource
from ldce.method.region.constraint import RegionInputs

__all__ = ["UNCOMPOSITED", "Composite", "RegionConfig", "RegionInputs", "RegionSource"]
