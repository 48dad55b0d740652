"""Images in and out: decoding files to [0, 1] RGB tensors, and the one 8-bit conversion."""

from ldce.images.decode import (
    BACKGROUND,
    ResizeMode,
    UnsupportedImage,
    box_mask,
    decode_image,
    decode_mask,
    fit,
    image_tensor,
    region_mask,
    viewable,
)
from ldce.images.eight_bit import from_uint8, quantise, read_image, to_uint8, to_uint8_tensor

__all__ = [
    "BACKGROUND",
    "ResizeMode",
    "UnsupportedImage",
    "box_mask",
    "decode_image",
    "decode_mask",
    "fit",
    "from_uint8",
    "image_tensor",
    "quantise",
    "read_image",
    "region_mask",
    "to_uint8",
    "to_uint8_tensor",
    "viewable",
]
