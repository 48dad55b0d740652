"""Text-prompted segmentation models for the ``segmentation`` region source (``ldce.method.region``)."""

from ldce.segmenters.clipseg import CLIPSegSegmenter, clipseg

__all__ = ["CLIPSegSegmenter", "clipseg"]
