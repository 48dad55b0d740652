"""Flowers-102 training and validation images for ``ldce fit`` (the DINO linear head).

Images are read from the original files (:func:`ldce.datamodules.oxford.flowers102_items`) and
returned as ``(images in [0, 1], labels)``; normalisation is the model's business. Augmentation
follows DINO's linear evaluation: training images get a random resized crop to ``image_size`` and a
random horizontal flip; validation images are resized (shorter side ``image_size · 256 / 224``)
and centre-cropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ldce.classifiers.names import read_class_names
from ldce.datamodules.folders import ShardItem
from ldce.datamodules.oxford import FlowersSplit, flowers102_items


class ItemImages(Dataset):
    """``(transform(RGB image), label)`` of a list of :class:`ShardItem`."""

    def __init__(self, items: Sequence[ShardItem], transform: Callable[[Image.Image], Tensor]) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        item = self.items[index]
        with Image.open(item.path) as image:
            return self.transform(image.convert("RGB")), int(item.label)


class Flowers102DataModule(LightningDataModule):
    """Flowers-102 splits for training a classifier.

    Args:
        root: the data set folder (``jpg/``, ``imagelabels.mat``, ``setid.mat``).
        class_names: file of the 102 class names (``configs/classes/flowers102.txt``).
        train_splits: official splits to train on.
        val_split: the official split to validate on.
        batch_size: images per batch.
        num_workers: data loader worker processes.
        image_size: side of the crops fed to the model.
    """

    def __init__(
        self,
        root: str,
        class_names: str,
        train_splits: list[FlowersSplit] | None = None,
        val_split: FlowersSplit = "val",
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
        image_size: PositiveInt = 224,
    ) -> None:
        super().__init__()
        self.root, self.names = root, read_class_names(Path(class_names))
        self.train_splits, self.val_split = train_splits or ["train"], val_split
        self.batch_size, self.num_workers, self.image_size = batch_size, num_workers, image_size

    def _loader(self, splits: Sequence[FlowersSplit], transform: Callable, shuffle: bool) -> DataLoader:
        items = [item for split in splits for item in flowers102_items(self.root, self.names, split)]
        return DataLoader(
            ItemImages(items, transform),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(0),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training images: random resized crop and flip."""
        augment = transforms.Compose(
            [transforms.RandomResizedCrop(self.image_size), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )
        return self._loader(self.train_splits, augment, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation images: resize and centre crop."""
        resize = round(self.image_size * 256 / 224)
        evaluate = transforms.Compose(
            [transforms.Resize(resize), transforms.CenterCrop(self.image_size), transforms.ToTensor()]
        )
        return self._loader([self.val_split], evaluate, shuffle=False)
