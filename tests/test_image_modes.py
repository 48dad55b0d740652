"""Every image mode Pillow opens arrives in [0, 1] RGB as a viewer shows it, or fails by name.

Each case writes an image with known pixel values in a format that keeps its mode, decodes it as the
datamodules do, and checks the values: 8-bit modes are k/255, 16-bit modes k/65535, 32-bit integer
modes k/(their range), float modes as stored; transparency is composited on white; orientation
metadata is applied. Modes that no file format stores (``RGBa``, ``La``, ``HSV``, ``I;16N``) cannot
reach the decoder from a file and are checked through :func:`viewable` directly.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from ldce.images import BACKGROUND, UnsupportedImage, decode_image, viewable


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _decoded(image: Image.Image, fmt: str, **params) -> np.ndarray:
    """The decoder's ``(H, W, 3)`` float values of ``image`` written as ``fmt`` (same size, no resampling)."""
    data = _encode(image, fmt, **params)
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.mode == image.mode or (image.mode, reopened.mode) in SAVED_AS, reopened.mode
    width, height = image.size
    assert width == height
    return decode_image(data, width, "resize").permute(1, 2, 0).numpy()


SAVED_AS = {("I;16B", "I;16B"), ("I", "I")}


def _gray(values, mode: str) -> Image.Image:
    image = Image.fromarray(np.array(values, dtype=DTYPES[mode]).reshape(2, 2))
    assert image.mode == mode
    return image


DTYPES = {"L": np.uint8, "I;16": np.uint16, "I": np.int32, "F": np.float32}


def _rgb(expected) -> np.ndarray:
    return np.repeat(np.array(expected, dtype=np.float32).reshape(2, 2, 1), 3, axis=2)


@pytest.mark.parametrize(
    ("mode", "fmt", "values", "scale"),
    [
        ("L", "PNG", [0, 1, 128, 255], 255),
        ("I;16", "PNG", [0, 1, 32768, 65535], 65535),
        ("I;16", "TIFF", [0, 257, 40000, 65535], 65535),
        ("I", "TIFF", [0, 1, 2**30, 2**31 - 1], 2**31 - 1),
        ("F", "TIFF", [0.0, 0.25, 0.999, 1.0], 1),
    ],
)
def test_gray_modes_are_scaled_by_their_true_range(mode, fmt, values, scale):
    decoded = _decoded(_gray(values, mode), fmt)
    np.testing.assert_allclose(decoded, _rgb(np.array(values, np.float64) / scale), rtol=1e-6, atol=0)


def test_sixteen_bit_big_endian_tiff_and_pnm_are_scaled_by_65535():
    big = Image.frombytes("I;16B", (2, 2), np.array([0, 1000, 30000, 65535], ">u2").tobytes())
    np.testing.assert_allclose(_decoded(big, "TIFF"), _rgb(np.array([0, 1000, 30000, 65535]) / 65535), rtol=1e-6)
    pnm = b"P5\n2 2\n1023\n" + np.array([0, 1023, 0, 1023], ">u2").tobytes()  # Pillow reads maxval 1023 as 0 … 65535
    np.testing.assert_allclose(decode_image(pnm, 2, "resize").permute(1, 2, 0).numpy(), _rgb([0, 1, 0, 1]), atol=1e-7)


def test_binary_palette_and_colour_modes_arrive_as_their_rgb_values():
    binary = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    np.testing.assert_array_equal(_decoded(binary, "PNG"), _rgb([0, 1, 1, 0]))
    palette = Image.new("P", (2, 2))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    palette.putdata([0, 1, 2, 3])
    expected = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.float32).reshape(2, 2, 3) / 255
    np.testing.assert_array_equal(_decoded(palette, "PNG"), expected)
    rgb = Image.fromarray((expected * 255).astype(np.uint8), "RGB")
    for fmt in ("PNG", "TIFF", "BMP", "PPM"):
        np.testing.assert_array_equal(_decoded(rgb, fmt), expected)


@pytest.mark.parametrize(
    ("mode", "pixel", "rgb"),
    [
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("CMYK", (255, 0, 0, 0), (0, 255, 255)),
        ("CMYK", (0, 0, 0, 255), (0, 0, 0)),
        ("YCbCr", (255, 128, 128), (255, 255, 255)),
        ("YCbCr", (0, 128, 128), (0, 0, 0)),
        ("LAB", (255, 128, 128), (255, 255, 255)),
        ("LAB", (0, 128, 128), (0, 0, 0)),
    ],
)
def test_other_colour_spaces_become_rgb(mode, pixel, rgb):
    decoded = _decoded(Image.new(mode, (2, 2), pixel), "TIFF")
    np.testing.assert_allclose(decoded, np.broadcast_to(np.array(rgb, np.float32) / 255, (2, 2, 3)), atol=2 / 255)


def _over_white(value: float, alpha: float) -> float:
    return (value * alpha + BACKGROUND[0] * (255 - alpha)) / 255 / 255


@pytest.mark.parametrize(("mode", "fmt"), [("RGBA", "PNG"), ("RGBA", "TIFF"), ("LA", "PNG"), ("PA", "TIFF")])
def test_transparency_is_composited_on_white(mode, fmt):
    rgba = [(200, 200, 200, 0), (0, 0, 0, 255), (0, 0, 0, 128), (100, 100, 100, 64)]
    image = Image.new("RGBA", (2, 2))
    image.putdata(rgba)
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "PA":
        image = image.convert("RGB").quantize(colors=4).convert("PA")
        image.putalpha(Image.frombytes("L", (2, 2), bytes(a for *_, a in rgba)))
    expected = np.array([[_over_white(v, a)] * 3 for v, _, _, a in rgba], np.float32).reshape(2, 2, 3)
    np.testing.assert_allclose(_decoded(image, fmt), expected, atol=1.01 / 255)


def test_a_transparent_palette_entry_is_white():
    image = Image.new("P", (2, 2))
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putdata([0, 1, 1, 0])
    white, red = [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]
    expected = np.array([[white, red], [red, white]], np.float32)
    np.testing.assert_array_equal(_decoded(image, "PNG", transparency=0), expected)


def test_orientation_metadata_is_applied():
    """EXIF orientation 6 (rotate 90° clockwise): a 2×1 red | blue row becomes a 1×2 column red over blue."""
    image = Image.new("RGB", (2, 1))
    image.putdata([(255, 0, 0), (0, 0, 255)])
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(io.BytesIO(_encode(image, "PNG", exif=exif))) as reopened:
        shown = viewable(reopened)
    assert shown.size == (1, 2) and shown.getpixel((0, 0)) == (255, 0, 0) and shown.getpixel((0, 1)) == (0, 0, 255)
    deep = Image.fromarray(np.array([[65535, 0]], np.uint16))
    with Image.open(io.BytesIO(_encode(deep, "PNG", exif=exif))) as reopened:
        shown = viewable(reopened)
    assert shown.size == (1, 2) and (shown.getpixel((0, 0)), shown.getpixel((0, 1))) == (1.0, 0.0)


def test_an_embedded_srgb_profile_keeps_the_values():
    image = Image.new("RGB", (2, 2), (30, 120, 220))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    np.testing.assert_allclose(_decoded(image, "PNG", icc_profile=profile), _decoded(image, "PNG"), atol=1.01 / 255)


def test_modes_no_file_stores_are_shown_too():
    premultiplied = viewable(Image.new("RGBa", (1, 1), (64, 0, 0, 128)))
    assert premultiplied.mode == "RGB" and premultiplied.getpixel((0, 0))[1:] == (127, 127)
    assert viewable(Image.new("La", (1, 1), (0, 0))).getpixel((0, 0)) == BACKGROUND
    assert viewable(Image.new("HSV", (1, 1), (0, 255, 255))).getpixel((0, 0)) == (255, 0, 0)
    assert viewable(Image.new("I;16N", (1, 1), 65535)).getpixel((0, 0)) == 1.0


@pytest.mark.parametrize(
    ("image", "fmt", "reason"),
    [
        (_gray([0.0, 0.5, 1.0, 2.0], "F"), "TIFF", "outside \\[0, 1\\]"),
        (_gray([0.0, float("nan"), 1.0, 0.5], "F"), "TIFF", "outside \\[0, 1\\]"),
        (_gray([0, -5, 10, 20], "I"), "TIFF", "negative values"),
    ],
    ids=["float above 1", "float NaN", "negative integers"],
)
def test_what_cannot_be_shown_faithfully_is_a_named_failure(image, fmt, reason):
    with pytest.raises(UnsupportedImage, match=f"mode {image.mode} .*{reason}"):
        decode_image(_encode(image, fmt), 2, "resize")


def test_the_first_frame_of_an_animation_is_used():
    frames = [Image.new("RGB", (2, 2), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert torch.equal(decode_image(data, 2, "resize")[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_a_transparent_gray_value_is_white_at_8_and_16_bits():
    """The same picture, gray value 3 (8-bit) or 3·257 (16-bit) marked transparent in the PNG (tRNS), decodes
    alike: transparent pixels white, the others at their value (within 1e-6 of the [0, 1] scale)."""
    picture = [0, 3, 128, 3]
    eight = _decoded(_gray(picture, "L"), "PNG", transparency=3)
    sixteen = _decoded(_gray([v * 257 for v in picture], "I;16"), "PNG", transparency=3 * 257)
    np.testing.assert_allclose(eight, _rgb([0.0, 1.0, 128 / 255, 1.0]), atol=1e-6)
    np.testing.assert_allclose(sixteen, eight, atol=1e-6)


def test_a_transparent_gray_value_is_white_in_32_bit_integer_images():
    """Mode ``I`` with ``info["transparency"]`` (no file format stores one, so it is set on the opened image):
    the pixels with that value are white, 1.0; the others keep value / range."""
    top = 2**31 - 1
    with Image.open(io.BytesIO(_encode(_gray([0, 7, top // 2, 7], "I"), "TIFF"))) as reopened:
        reopened.info["transparency"] = 7
        shown = np.asarray(viewable(reopened))
    np.testing.assert_allclose(shown, np.array([[0.0, 1.0], [(top // 2) / top, 1.0]]), atol=1e-6)


def test_data_pillow_cannot_identify_fails_by_name_without_object_addresses():
    """Bytes in no image format raise UnsupportedImage saying so, with no ``<… object at 0x…>`` repr."""
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(b"plain text, not an image", 2, "resize")
    message = str(caught.value)
    assert "not an image Pillow can read" in message and "0x" not in message and "object at" not in message
