"""ImageNet (ILSVRC2012) validation images as :class:`ShardItem` lists, in the paper's order.

Two layouts are read:

* the ImageFolder layout: ``val/<wnid>/<file>.JPEG`` (one folder per synset);
* a flat folder of ``ILSVRC2012_val_*.JPEG`` plus its labels: the ILSVRC2012 devkit folder
  (``data/meta.mat`` maps the devkit's class ids to wnids, ``data/ILSVRC2012_validation_ground_truth.txt``
  holds the id of image ``n`` on line ``n``), or a labels file with one image per line,
  ``<file> <label>``, the label a class index (e.g. Caffe's ``val.txt``) or a wnid (e.g. Kaggle's
  ``LOC_val_solution.csv``, ``ImageId,PredictionString`` whose first token is the wnid). Lines are
  split at whitespace or commas; a header line is skipped.

Class indices are the standard ones: the position of the wnid in the sorted list of the 1000
synsets (timm's ``ImageNetInfo``). The *folder order* is torchvision's ``ImageFolder`` order: by
class, then by file name. Its position is each image's ``index``, the index of the published
target mapping (the reference's ``data/image_idx_to_tgt.yaml``: image 0…49 are class 0's). The
reference then *processes* the images in *block order*: for ``b = 0 … 49``, the ``b``-th image of
every class — so each block of 1,000 holds one image per class, and its ``start_sample`` /
``end_sample`` (in thousands) select whole blocks. ``order="blocks"`` writes shards in that order;
each sample keeps its folder-order ``index``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ldce.datamodules.folders import ShardItem, is_image_path
from ldce.datamodules.matfile import read_mat

Order = Literal["blocks", "folder"]
WNID = re.compile(r"n\d{8}")


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC2012 synsets in class-index order (sorted wnids), from timm's package data."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def _label_of(token: str, class_of: dict[str, int], where: str) -> int:
    """A class index from an integer token or a wnid token."""
    if WNID.fullmatch(token):
        if token not in class_of:
            raise ValueError(f"{where}: {token} is not one of the 1000 ILSVRC2012 synsets")
        return class_of[token]
    if not token.isdigit() or int(token) >= len(class_of):
        raise ValueError(f"{where}: label {token!r} is neither a class index below {len(class_of)} nor a wnid")
    return int(token)


def read_labels_file(path: Path, class_of: dict[str, int]) -> dict[str, int]:
    """``{file stem: class index}`` of a labels file (see the module docstring)."""
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = [t for t in re.split(r"[\s,]+", line.strip()) if t]
        if len(tokens) < 2 or (number == 1 and not (WNID.fullmatch(tokens[1]) or tokens[1].isdigit())):
            continue  # blank line or header
        labels[Path(tokens[0]).stem] = _label_of(tokens[1], class_of, f"{path}:{number}")
    if not labels:
        raise ValueError(f"{path}: no '<file> <label or wnid>' lines")
    return labels


def _folder_items(root: Path, wnids: list[str]) -> list[tuple[str, Path, int]]:
    """``(relpath, path, label)`` of an ImageFolder tree (synset folders unknown to ImageNet are an error)."""
    class_of = {wnid: label for label, wnid in enumerate(wnids)}
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name not in class_of:
            raise ValueError(f"{root}: folder {folder.name!r} is not an ILSVRC2012 synset (wnid)")
        for path in sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p)):
            found.append((path.relative_to(root).as_posix(), path, class_of[folder.name]))
    return found


def read_devkit_labels(devkit: Path, class_of: dict[str, int]) -> dict[str, int]:
    """``{file stem: class index}`` of the validation images from the ILSVRC2012 devkit folder."""
    folder = devkit / "data" if (devkit / "data").is_dir() else devkit
    synsets = read_mat(folder / "meta.mat").get("synsets")
    if not isinstance(synsets, list) or not all(isinstance(s, dict) and "WNID" in s for s in synsets):
        raise ValueError(f"{folder / 'meta.mat'}: no 'synsets' struct array with ILSVRC2012_ID and WNID fields")
    wnid_of = {int(np.asarray(s["ILSVRC2012_ID"]).item()): s["WNID"] for s in synsets}
    truth = folder / "ILSVRC2012_validation_ground_truth.txt"
    if not truth.is_file():
        raise FileNotFoundError(f"{truth} not found (the devkit's validation labels)")
    return {f"ILSVRC2012_val_{n:08d}": class_of[wnid_of[int(i)]] for n, i in enumerate(truth.read_text().split(), 1)}


def _flat_items(root: Path, labels: Path, wnids: list[str]) -> list[tuple[str, Path, int]]:
    """``(relpath, path, label)`` of a flat folder labelled by a devkit folder or a labels file."""
    class_of = {wnid: label for label, wnid in enumerate(wnids)}
    label_of = read_devkit_labels(labels, class_of) if labels.is_dir() else read_labels_file(labels, class_of)
    images = sorted(p for p in root.iterdir() if p.is_file() and is_image_path(p))
    unlabelled = [p.name for p in images if p.stem not in label_of]
    if unlabelled:
        raise ValueError(f"{labels}: no label for {len(unlabelled)} images of {root}, e.g. {unlabelled[:3]}")
    return [(p.name, p, label_of[p.stem]) for p in images]


def block_order(labels: Sequence[int]) -> list[int]:
    """Positions of folder-ordered images in block order: ``b``-th image of every class, for each ``b``.

    ``labels`` must be grouped by class (folder order) with the same number ``n`` of images per
    class; block order is then ``[p for b in range(n) for p in positions[b::n]]`` — the reference's
    ``samples[b::50]`` for ImageNet's 50 images per class.
    """
    counts = Counter(labels)
    per_class = set(counts.values())
    if len(per_class) != 1:
        raise ValueError(f"block order needs the same number of images per class, got {sorted(per_class)}")
    if list(labels) != sorted(labels):
        raise ValueError("block order needs the images grouped by class (folder order)")
    step = per_class.pop()
    return [p for block in range(step) for p in range(block, len(labels), step)]


def imagenet_items(
    root: str | Path,
    labels: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    order: Order = "blocks",
) -> list[ShardItem]:
    """ImageNet validation images with labels, class names and folder-order indices.

    Args:
        root: the ImageFolder ``val`` folder, or the flat image folder when ``labels`` is given.
        labels: the devkit folder or a labels file, for a flat folder (see the module docstring).
        class_names: 1000 names for the records and prompts (e.g. the shipped OpenAI names).
        classes: keep only these class indices (e.g. ``[339, 340]`` for sorrel ↔ zebra).
        order: ``blocks`` (the reference's order for all classes) or ``folder``.
    """
    root, wnids = Path(root), imagenet_wnids()
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet folder {root} not found")
    if class_names is not None and len(class_names) != len(wnids):
        raise ValueError(f"class_names has {len(class_names)} names, ImageNet has {len(wnids)} classes")
    found = _flat_items(root, Path(labels), wnids) if labels else _folder_items(root, wnids)
    found.sort(key=lambda item: (item[2], Path(item[0]).name))
    items = [
        ShardItem(path, relpath, label, None, class_names[label] if class_names else None, index)
        for index, (relpath, path, label) in enumerate(found)
        if classes is None or label in classes
    ]
    if not items:
        raise ValueError(f"{root}: no ImageNet images found" + (f" of classes {list(classes)}" if classes else ""))
    positions = block_order([item.label for item in items]) if order == "blocks" else range(len(items))
    return [items[p] for p in positions]
