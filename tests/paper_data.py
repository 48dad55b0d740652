"""Tiny fakes of the paper's data sets in their original folder layouts (random PNG bytes as images)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cli_helpers import png
from paper_files import write_mat

from ldce.datamodules.imagenet import imagenet_wnids

CELEBA_ATTRIBUTES = [f"attr{i}" for i in range(40)]
CELEBA_ATTRIBUTES[31], CELEBA_ATTRIBUTES[39] = "Smiling", "Young"


def image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(seed))


def write_imagenet_folder(root: Path, classes: Sequence[int] = (0, 1, 2), per_class: int = 2) -> list[str]:
    """``root/<wnid>/ILSVRC2012_val_<10 · label + k + 1>.JPEG`` for ``classes``; returns the 1000 wnids."""
    wnids = imagenet_wnids()
    for label in classes:
        for k in range(per_class):
            image(root / wnids[label] / f"ILSVRC2012_val_{label * 10 + k + 1:08d}.JPEG", label * 10 + k)
    return wnids


def write_devkit(folder: Path, wnids: Sequence[str], truth: dict[int, int]) -> Path:
    """An ILSVRC2012 devkit: ``data/meta.mat`` giving class ``c`` the devkit id ``1000 − c`` (the devkit's
    ids are not in wnid order) plus a non-leaf synset, and the ground truth ``{image number: class}``."""
    synsets = [
        {"ILSVRC2012_ID": 1000 - c, "WNID": wnid, "words": f"class {c}", "num_children": 0}
        for c, wnid in enumerate(wnids)
    ] + [{"ILSVRC2012_ID": 1001, "WNID": "n00001740", "words": "entity", "num_children": 2}]
    write_mat(folder / "data" / "meta.mat", {"synsets": synsets})
    lines = [str(1000 - truth.get(n, 0)) for n in range(1, max(truth) + 1)]
    (folder / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_celebahq(root: Path, hq_rows: bool = False) -> None:
    """6 HQ images of CelebA files 000101…000106 in partitions 0,2,2,1,2,2; odd ``idx`` smile, even are young.

    ``hq_rows``: attribute rows by HQ file (CelebAMask-HQ's file) instead of by CelebA file.
    """
    (root / "CelebA-HQ-img").mkdir(parents=True)
    mapping, attributes, partition = ["idx orig_idx orig_file"], ["6", " ".join(CELEBA_ATTRIBUTES)], []
    for idx, split in enumerate([0, 2, 2, 1, 2, 2]):
        image(root / "CelebA-HQ-img" / f"{idx}.jpg", idx)
        celeba = f"{101 + idx:06d}.jpg"
        mapping.append(f"{idx} {100 + idx} {celeba}")
        values = ["-1"] * 40
        values[31], values[39] = ("1" if idx % 2 else "-1"), ("-1" if idx % 2 else "1")
        attributes.append(f"{f'{idx}.jpg' if hq_rows else celeba}  " + " ".join(values))
        partition.append(f"{celeba} {split}")
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    (root / "attributes.txt").write_text("\n".join(attributes) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")


def write_flowers(
    root: Path, labels: Sequence[int] = (1, 2, 102, 1, 2, 102), test_ids: Sequence[int] = (6, 4, 5), size: int = 32
) -> None:
    """``root/flowers-102`` (torchvision's layout): ``jpg/``, ``imagelabels.mat`` (1-based labels),
    ``setid.mat`` with train ids 1, 2, val id 3 and ``test_ids``."""
    folder = root / "flowers-102"
    for i in range(1, len(labels) + 1):
        (folder / "jpg").mkdir(parents=True, exist_ok=True)
        (folder / "jpg" / f"image_{i:05d}.jpg").write_bytes(png(i, size=size))
    write_mat(folder / "imagelabels.mat", {"labels": np.array([labels])})
    write_mat(
        folder / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3]]), "tstid": np.array([test_ids])}
    )


def write_pets(
    root: Path,
    lines: Sequence[str] = ("Abyssinian_201 1 1 1", "great_pyrenees_12 16 2 14", "yorkshire_terrier_9 37 2 25"),
) -> None:
    """``root/images/*.jpg`` and ``root/annotations/test.txt`` with ``lines``."""
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")
    for number, line in enumerate(lines):
        image(root / "images" / f"{line.split()[0]}.jpg", number)
