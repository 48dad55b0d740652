"""Images in and out: decoding files to [0, 1] RGB tensors, and the one 8-bit conversion."""

from ldce.images.decode import ResizeMode, decode_image, fit, to_rgb
from ldce.images.eight_bit import quantise, read_image, to_uint8, to_uint8_tensor

__all__ = ["ResizeMode", "decode_image", "fit", "quantise", "read_image", "to_rgb", "to_uint8", "to_uint8_tensor"]
