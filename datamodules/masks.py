"""Region masks beside image files: ``<name>.mask.<image extension>``, the case of the name ignored.

A mask is read with its image (white: may change; see ``ldce.method.region``); it is never an input of
its own. In a shard the mask is the sample's ``mask.png`` entry whatever the file's format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ppm", "pgm", "pbm", "pnm", "bmp", "gif", "tif", "tiff")
"""Image entries a sample may carry; the reader takes the first present, in this order (of a multi-frame
GIF or TIFF, the first frame)."""
MASK = "mask.png"
"""A sample's region mask entry in a shard."""
MASK_SUFFIXES = tuple(f".mask.{ext}" for ext in sorted(IMAGE_EXTENSIONS, key=lambda ext: ext != "png"))
"""The endings of a region mask's name beside its image (compared in lower case; ``.mask.png`` first)."""


def is_mask_path(path: Path) -> bool:
    """Whether ``path`` names a region mask, ``<name>.mask.<image extension>`` in any case."""
    return path.name.lower().endswith(MASK_SUFFIXES)


def masks_beside(images: Iterable[Path]) -> dict[Path, Path]:
    """The region mask of each image that has one beside it (``<name>.mask.png`` preferred), reading each
    folder once: ``{image: mask}``."""
    listings: dict[Path, dict[str, Path]] = {}
    found = {}
    for image in images:
        folder = image.parent
        if folder not in listings and folder.is_dir():
            with os.scandir(folder) as entries:
                listings[folder] = {entry.name.lower(): folder / entry.name for entry in entries if entry.is_file()}
        names = listings.get(folder, {})
        stem = image.stem.lower()
        mask = next((names[stem + suffix] for suffix in MASK_SUFFIXES if stem + suffix in names), None)
        if mask is not None:
            found[image] = mask
    return found
