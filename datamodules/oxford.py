"""Oxford Flowers-102 and Oxford-IIIT Pets as :class:`ShardItem` lists, in their official splits.

Both follow torchvision's readers of the same files (which the reference used), so that an image's
``index`` — its position in the split — is the index of the reference's per-image target files
(``flowers_closest_indices.json``, ``pets_closest_indices.json``).

* Flowers-102 (``root`` holding ``jpg/image_NNNNN.jpg``, ``imagelabels.mat``, ``setid.mat``):
  the split's image ids in ``setid.mat`` order (``trnid``, ``valid``, ``tstid``); label =
  ``imagelabels[id] − 1``; class names from a list (the dataset ships none).
* Oxford-IIIT Pets (``root`` holding ``images/`` and ``annotations/{trainval,test}.txt`` with lines
  ``<image id> <class id> <species> <breed id>``): label = class id − 1; class name = the image id
  without its number, underscores as spaces, lower case (``"great_pyrenees_12"`` → ``"great pyrenees"``),
  the names the reference's prompts use.

torchvision's download layout (``root/flowers-102``, ``root/oxford-iiit-pet``) is found as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ldce.datamodules.folders import ShardItem
from ldce.datamodules.matfile import read_vector

FlowersSplit = Literal["train", "val", "test"]
PetsSplit = Literal["trainval", "test"]
FLOWERS_SPLITS = {"train": "trnid", "val": "valid", "test": "tstid"}
FLOWERS_CLASSES = 102


def dataset_root(root: str | Path, torchvision_folder: str, marker: str) -> Path:
    """``root``, or ``root/<torchvision_folder>`` when only that one holds ``marker``."""
    root = Path(root)
    if not (root / marker).exists() and (root / torchvision_folder / marker).exists():
        root = root / torchvision_folder
    if not (root / marker).exists():
        raise FileNotFoundError(f"{root / marker} not found (expected the data set's original files under {root})")
    return root


def flowers102_items(root: str | Path, class_names: Sequence[str], split: FlowersSplit = "test") -> list[ShardItem]:
    """Flowers-102 images of ``split`` with 0-based labels and names (``class_names``: 102 names)."""
    if len(class_names) != FLOWERS_CLASSES:
        raise ValueError(f"Flowers-102 needs {FLOWERS_CLASSES} class names, got {len(class_names)}")
    root = dataset_root(root, "flowers-102", "imagelabels.mat")
    labels = read_vector(root / "imagelabels.mat", "labels") - 1
    items = []
    for image_id in read_vector(root / "setid.mat", FLOWERS_SPLITS[split]).tolist():
        relpath = f"jpg/image_{image_id:05d}.jpg"
        if not 1 <= image_id <= len(labels) or not (root / relpath).is_file():
            raise FileNotFoundError(f"{root / relpath} (image {image_id} of split {split!r}) not found")
        label = int(labels[image_id - 1])
        items.append(ShardItem(root / relpath, relpath, label, None, class_names[label]))
    return items


def pets_class_name(image_id: str) -> str:
    """The breed of a Pets image id: ``"Egyptian_Mau_63"`` → ``"egyptian mau"``."""
    return image_id.rsplit("_", 1)[0].replace("_", " ").lower()


def pets_items(
    root: str | Path, split: PetsSplit = "test", class_names: Sequence[str] | None = None
) -> list[ShardItem]:
    """Oxford-IIIT Pets images of ``split`` in annotation-file order, 0-based labels, breed names
    (from the image ids unless ``class_names`` is given)."""
    root = dataset_root(root, "oxford-iiit-pet", "annotations")
    annotations = root / "annotations" / f"{split}.txt"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found")
    items = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        image_id, class_id, *_ = line.split()
        relpath, label = f"images/{image_id}.jpg", int(class_id) - 1
        if not (root / relpath).is_file():
            raise FileNotFoundError(f"{root / relpath} (line {number} of {annotations}) not found")
        name = class_names[label] if class_names is not None else pets_class_name(image_id)
        items.append(ShardItem(root / relpath, relpath, label, None, name))
    return items
