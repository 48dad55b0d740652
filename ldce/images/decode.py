"""Encoded image files → ``(3, size, size)`` float tensors in [0, 1] RGB, as a person sees them in a viewer.

Every mode Pillow opens arrives in [0, 1] RGB:

- orientation metadata (EXIF) is applied first; of a multi-frame file the first frame is used;
- an embedded ICC colour profile is applied (converted to sRGB) when one is present;
- 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, …) are converted by
  Pillow and divided by 255;
- transparency (an alpha channel, a ``transparency`` palette entry or gray value — 8-bit or high-depth —,
  premultiplied ``RGBa``/``La``) is composited onto :data:`BACKGROUND`, white;
- 16-bit integer modes (``I;16*``, and ``I`` from 16-bit PNM files) are divided by 65535; ``I`` from a
  TIFF by its ``BitsPerSample`` range (signed: ``2^(b−1) − 1``), others have no known range;
- 32-bit float ``F`` is taken as is and must lie in [0, 1].

Data in which Pillow recognises no image format raises :class:`UnsupportedImage` ("not an image Pillow can
read"). An image that cannot be shown faithfully — an integer image of unknown range or with negative values,
a float image outside [0, 1] or with NaNs, a mode Pillow cannot convert — raises :class:`UnsupportedImage`
naming the mode and the reason; the caller turns either into that sample's failure.
Then the image is resized (bicubic): ``center_crop`` resizes the shorter side to ``size`` and crops the
centre, ``resize`` squashes to ``size²``.
"""

from __future__ import annotations

import io
import logging
from typing import Literal

import numpy as np
import torch
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageOps, UnidentifiedImageError

from ldce.images.eight_bit import from_uint8

log = logging.getLogger(__name__)

ResizeMode = Literal["center_crop", "resize"]
BACKGROUND = (255, 255, 255)
MASK_BACKGROUND = (0, 0, 0)
"""What transparent pixels of a region mask mean: black, keep the original."""
"""Transparent pixels are shown over white, as most viewers' default canvas."""
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
TIFF_BITS_PER_SAMPLE, TIFF_SAMPLE_FORMAT, TIFF_SIGNED = 258, 339, 2
SRGB = ImageCms.createProfile("sRGB")


class UnsupportedImage(ValueError):
    """An image that ldce cannot show as a viewer would; the message names its mode and why."""


def _integer_range(image: Image.Image) -> float:
    """The largest value of a single-channel integer image's data type (``I;16*``, ``I``)."""
    if image.mode in SIXTEEN_BIT or image.format in ("PPM", "PNG"):  # Pillow scales 16-bit PNM to 0 … 65535
        return 65535.0
    tags = getattr(image, "tag_v2", None) if image.format == "TIFF" else None
    if tags is None or TIFF_BITS_PER_SAMPLE not in tags:
        raise UnsupportedImage(f"mode {image.mode} ({image.format} file) has no known value range")
    bits = int(np.atleast_1d(tags[TIFF_BITS_PER_SAMPLE])[0])
    signed = TIFF_SIGNED in np.atleast_1d(tags.get(TIFF_SAMPLE_FORMAT, 1))
    return float(2 ** (bits - 1) - 1 if signed else 2**bits - 1)


def _unit_values(image: Image.Image) -> np.ndarray:
    """The ``(H, W)`` float values in [0, 1] of a high-depth single-channel image (``I;16*``, ``I``, ``F``):
    integers divided by their range, floats as they are; pixels equal to an integer ``info["transparency"]``
    (a PNG ``tRNS`` gray value) are shown over white (:data:`BACKGROUND`): 1.0.

    Raises :class:`UnsupportedImage` for negative integers, values outside [0, 1] or NaNs.
    """
    raw = np.asarray(image, dtype=np.float64)
    if image.mode != "F" and raw.size and raw.min() < 0:
        raise UnsupportedImage(f"mode {image.mode} has negative values (min {raw.min():g})")
    values = raw if image.mode == "F" else raw / _integer_range(image)
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):
        values = np.where(raw == transparent, 1.0, values)
    if values.size and not (np.isfinite(values).all() and 0.0 <= values.min() and values.max() <= 1.0):
        raise UnsupportedImage(
            f"mode F has values outside [0, 1] (min {np.nanmin(values):g}, max {np.nanmax(values):g})"
        )
    return values


def _gray_to_unit(image: Image.Image) -> Image.Image:
    """A high-depth single-channel image as a float ``F`` image in [0, 1] (see :func:`_unit_values`),
    orientation applied."""
    exif = image.getexif()
    unit = Image.fromarray(_unit_values(image).astype(np.float32), "F")
    unit.info["exif"] = exif.tobytes()
    return ImageOps.exif_transpose(unit)


def _with_icc(image: Image.Image) -> Image.Image:
    """``image`` converted from its embedded ICC profile to sRGB (``RGB``/``RGBA``/``CMYK``/``L``)."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        rgb = ImageCms.profileToProfile(image.convert("RGB") if alpha else image, source, SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError) as error:
        log.warning("ignoring an embedded ICC profile that cannot be applied (%s)", error)
        return image
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def _composited(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """RGB; transparent pixels (alpha channel or ``transparency`` entry) over ``background``."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return image.convert("RGB")
    if image.mode in ("RGBa", "La"):
        image = image.convert("RGBA" if image.mode == "RGBa" else "LA")
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba).convert("RGB")


def viewable(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """``image`` as a viewer shows it over ``background``: ``RGB``, or ``F`` in [0, 1] for high-depth gray
    (see module docstring)."""
    if image.mode in (*SIXTEEN_BIT, "I", "F"):
        return _gray_to_unit(image)
    try:
        return _composited(_with_icc(ImageOps.exif_transpose(image)), background)
    except (ValueError, OSError) as error:
        raise UnsupportedImage(f"mode {image.mode} cannot be converted to RGB ({error})") from error


def fit(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    """``image`` resized to ``size × size``: squashed (``resize``) or shorter side + centre crop."""
    if mode == "resize":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    width, height = image.size
    scale = size / min(width, height)
    width, height = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (width - size) // 2, (height - size) // 2
    return image.resize((width, height), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))


def _opened(data: bytes) -> Image.Image:
    """``data`` opened by Pillow; :class:`UnsupportedImage` (no object reprs in its message) when Pillow
    recognises no image format in it."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImage("not an image Pillow can read (format not recognised)") from None


def decode_image(data: bytes, size: int, mode: ResizeMode) -> torch.Tensor:
    """Encoded image bytes → ``FloatTensor (3, size, size)`` in [0, 1] (raises ``UnsupportedImage``,
    or PIL's errors for damaged data)."""
    with _opened(data) as image:
        image.load()  # decode everything now, so that truncated data raises here
        return image_tensor(image, size, mode)


def image_tensor(
    image: Image.Image, size: int, mode: ResizeMode, background: tuple[int, int, int] = BACKGROUND
) -> torch.Tensor:
    """A Pillow image of any mode → ``FloatTensor (3, size, size)`` in [0, 1], as a viewer shows it
    (see the module docstring; transparent pixels over ``background``), fitted by ``mode``."""
    shown = fit(viewable(image, background), size, mode)
    if shown.mode == "F":
        gray = torch.from_numpy(np.asarray(shown, dtype=np.float32).copy()).clamp_(0.0, 1.0)
        return gray.expand(3, -1, -1).contiguous()
    return from_uint8(np.array(shown, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _shown_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as a viewer shows it (EXIF rotations applied)."""
    width, height = image.size
    turned = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def decode_mask(data: bytes, image: bytes, size: int, mode: ResizeMode) -> torch.Tensor:
    """A region mask image (white: may change; any mode; transparent pixels count as black, keep) →
    ``FloatTensor (1, size, size)`` in [0, 1], fitted by ``mode`` as its image (encoded bytes) is.
    ``ValueError`` when the mask and the image, as a viewer shows them, differ in size (fitted apart, they
    would not line up)."""
    with _opened(data) as picture, _opened(image) as original:
        if (mask_size := _shown_size(picture)) != (image_size := _shown_size(original)):
            raise ValueError(
                f"the region mask is {mask_size[0]}×{mask_size[1]} pixels but its image is "
                f"{image_size[0]}×{image_size[1]}: draw the mask at the image's size"
            )
        picture.load()
        return image_tensor(picture, size, mode, MASK_BACKGROUND).mean(0, keepdim=True)


def box_mask(data: bytes, box: list[float], size: int, mode: ResizeMode) -> torch.Tensor:
    """The mask of ``box`` ``[x0, y0, x1, y1]`` (pixels of the encoded image ``data``, x1/y1 exclusive) →
    ``FloatTensor (1, size, size)`` in [0, 1], fitted by ``mode`` as the image is. ``ValueError`` for a
    box that is not four numbers or lies outside the image."""
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        raise ValueError(f"box must be [x0, y0, x1, y1] in pixels, got {box!r}")
    with _opened(data) as image:
        width, height = image.size
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"box {box} is not inside the {width}×{height} image")
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)
    return image_tensor(canvas, size, mode)[:1]


def region_mask(
    mask: bytes | None, box: list[float] | None, image: bytes, size: int, mode: ResizeMode
) -> torch.Tensor | None:
    """An input's region mask ``(1, size, size)``: its mask image, else its box (``[x0, y0, x1, y1]`` in
    the pixels of ``image``), else ``None``."""
    if mask is not None:
        return decode_mask(mask, image, size, mode)
    return None if box is None else box_mask(image, box, size, mode)
