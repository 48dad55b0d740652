"""CelebA-HQ with one CelebA attribute as a binary label, as :class:`ShardItem` lists.

Files (the CelebAMask-HQ release plus CelebA's own lists):

* ``CelebA-HQ-img/<idx>.jpg`` (or ``.png``), ``idx`` = 0 … 29999;
* ``CelebA-HQ-to-CelebA-mapping.txt``: ``idx orig_idx orig_file`` — the CelebA image each HQ image
  was made from;
* an attribute file: CelebA's ``list_attr_celeba.txt`` (rows by CelebA file) or CelebAMask-HQ's
  ``CelebAMask-HQ-attribute-anno.txt`` (rows by HQ file, what the reference read); both start with
  a count line and a line of the 40 attribute names, then ``<file> ±1 … ±1``;
* CelebA's partition file ``list_eval_partition.txt`` (or ``.csv``): ``<CelebA file> 0|1|2``
  (train, val, test).

An HQ image belongs to the partition of its CelebA source image; its label is its attribute
(``1`` → 1, ``-1`` → 0), attribute 31 (``Smiling``) or 39 (``Young``) in the paper; images are
listed by ``idx``, and ``index`` is the position in the partition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ldce.datamodules.folders import ShardItem

Partition = Literal["train", "val", "test"]
PARTITIONS = {"train": 0, "val": 1, "test": 2}
IMAGE_FOLDER = "CelebA-HQ-img"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PROMPT_NAMES = {"Smiling": ("non-smiling", "smiling"), "Young": ("old", "young")}


def _rows(path: Path) -> list[list[str]]:
    """Non-empty lines of a whitespace- or comma-separated text file, split into tokens."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return [tokens for line in path.read_text().splitlines() if (tokens := re.split(r"[\s,]+", line.strip())) != [""]]


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Attribute names and ``{file: [±1] * 40}`` of a CelebA-style attribute file."""
    rows = _rows(path)
    if len(rows) < 3:
        raise ValueError(f"{path}: expected a count line, a line of attribute names and rows of values")
    names = rows[1]
    values = {row[0]: [int(v) for v in row[1:]] for row in rows[2:]}
    wrong = [file for file, row in values.items() if len(row) != len(names)]
    if wrong:
        raise ValueError(f"{path}: rows with other than {len(names)} values, e.g. {wrong[:3]}")
    return names, values


def read_partition(path: Path) -> dict[str, int]:
    """``{CelebA file: 0|1|2}`` of CelebA's partition list (a header row, if any, is skipped)."""
    return {row[0]: int(row[1]) for row in _rows(path) if len(row) == 2 and row[1].isdigit()}


def read_mapping(path: Path) -> list[tuple[int, str]]:
    """``(HQ idx, CelebA file)`` pairs of ``CelebA-HQ-to-CelebA-mapping.txt``."""
    return [(int(row[0]), row[2]) for row in _rows(path) if row[0].isdigit()]


def attribute_index(names: Sequence[str], attribute: int | str) -> int:
    """Position of ``attribute`` (an index or a name such as ``"Smiling"``) among ``names``."""
    if isinstance(attribute, str) and not attribute.isdigit():
        if attribute not in names:
            raise ValueError(f"unknown attribute {attribute!r}; known: {list(names)}")
        return list(names).index(attribute)
    index = int(attribute)
    if not 0 <= index < len(names):
        raise ValueError(f"attribute index {index} outside [0, {len(names)})")
    return index


def binary_class_names(attribute: str) -> tuple[str, str]:
    """Names of an attribute's absence and presence, as the paper's prompts use them."""
    return PROMPT_NAMES.get(
        attribute, (f"not {attribute.lower().replace('_', ' ')}", attribute.lower().replace("_", " "))
    )


def _image_file(folder: Path, idx: int) -> Path:
    """The HQ image ``idx`` in ``folder`` (``<idx>.jpg``/``.png``, optionally zero-padded to 5)."""
    for name in (f"{idx}.jpg", f"{idx}.png", f"{idx:05d}.jpg", f"{idx:05d}.png"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no image for CelebA-HQ index {idx} ({idx}.jpg or .png)")


def celebahq_items(
    root: str | Path,
    attribute: int | str,
    attributes_file: str | Path,
    partition_file: str | Path,
    partition: Partition = "test",
    class_names: Sequence[str] | None = None,
) -> list[ShardItem]:
    """CelebA-HQ images of ``partition`` labelled by ``attribute`` (0/1), named by ``class_names``
    (default :func:`binary_class_names`: ``non-smiling``/``smiling``, ``old``/``young``).

    ``root`` holds ``CelebA-HQ-img/`` and the mapping file; the attribute and partition files may
    lie anywhere.
    """
    root = Path(root)
    names, values = read_attributes(Path(attributes_file))
    column = attribute_index(names, attribute)
    split = read_partition(Path(partition_file))
    class_names = binary_class_names(names[column]) if class_names is None else class_names
    if len(class_names) != 2:
        raise ValueError(f"a binary attribute needs 2 class names (absent, present), got {list(class_names)}")
    items = []
    for idx, celeba_file in read_mapping(root / MAPPING_FILE):
        if split.get(celeba_file) != PARTITIONS[partition]:
            continue
        row = values.get(f"{idx}.jpg", values.get(celeba_file))
        if row is None:
            raise ValueError(f"{attributes_file}: no attributes for HQ image {idx} (CelebA {celeba_file})")
        path, label = _image_file(root / IMAGE_FOLDER, idx), int(row[column] > 0)
        items.append(ShardItem(path, f"{IMAGE_FOLDER}/{path.name}", label, None, class_names[label]))
    if not items:
        raise ValueError(f"{root / MAPPING_FILE}: no CelebA-HQ image in partition {partition!r} of {partition_file}")
    return items
