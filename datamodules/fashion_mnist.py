"""Fashion-MNIST from local IDX files: Debian's ``dataset-fashion-mnist`` or torchvision's folder.

Images enter ldce as RGB in [0, 1] at 32×32: the 28×28 grayscale digits of clothing are padded by
2 pixels of background (0) on each side and repeated over three channels.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ldce.images import from_uint8

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
Split = Literal["train", "test"]
_PREFIX = {"train": "train", "test": "t10k"}


def _idx_file(root: Path, split: Split, kind: str) -> Path:
    """The IDX file of ``split`` (``images``/``labels``) under ``root``, gzipped or not; both layouts."""
    suffix = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (f"{_PREFIX[split]}-{kind}-{suffix}", f"{_PREFIX[split]}-{kind}-{suffix}.gz"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"Fashion-MNIST {split} {kind} not found under {root} (nor {root}/FashionMNIST/raw); "
        f"install Debian's dataset-fashion-mnist or point root at torchvision's FashionMNIST download"
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (uint8 data): magic ``0x0000 08 ndim``, ``ndim`` big-endian int32 sizes, data."""
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def to_rgb32(images: np.ndarray) -> Tensor:
    """``(N, 28, 28)`` uint8 → ``(N, 3, 32, 32)`` float32 in [0, 1]."""
    x = from_uint8(images.copy())
    return torch.nn.functional.pad(x, (2, 2, 2, 2))[:, None].expand(-1, 3, -1, -1).contiguous()


def load_split(root: str | Path, split: Split) -> tuple[Tensor, Tensor]:
    """``(images (N, 3, 32, 32) in [0, 1], labels int64 (N,))`` of a split."""
    root = Path(root)
    images, labels = (read_idx(_idx_file(root, split, kind)) for kind in ("images", "labels"))
    return to_rgb32(images), torch.from_numpy(labels.astype(np.int64))


class FashionMNISTDataModule(LightningDataModule):
    """Fashion-MNIST for training the demo models: batches ``(images, labels)``.

    ``train_size`` of the 60,000 training images are used for training (the first ones in a fixed
    random order, ``seed``) and ``val_size`` further ones for validation; ``test`` is the official
    10,000-image test split.
    """

    def __init__(
        self,
        root: str = DEBIAN_ROOT,
        batch_size: int = 128,
        train_size: int = 55000,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if train_size + val_size > 60000 or min(train_size, val_size, batch_size) < 1:
            raise ValueError(f"train_size + val_size must be ≤ 60000 and sizes ≥ 1, got {train_size} + {val_size}")
        self.root, self.batch_size, self.num_workers = root, batch_size, num_workers
        self.train_size, self.val_size, self.seed = train_size, val_size, seed

    def map_sets(self, transform: Callable[[Dataset], Dataset]) -> None:
        """Replace the training and validation sets by ``transform`` of them (e.g. encoded to latents)."""
        self.train_set, self.val_set = transform(self.train_set), transform(self.val_set)

    def setup(self, stage: str) -> None:
        images, labels = load_split(self.root, "train")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        train, val = order[: self.train_size], order[self.train_size : self.train_size + self.val_size]
        self.train_set, self.val_set = (
            TensorDataset(images[train], labels[train]),
            TensorDataset(images[val], labels[val]),
        )
        self.test_set = TensorDataset(*load_split(self.root, "test"))

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            self.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=self.num_workers,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, 512, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, 512, num_workers=self.num_workers)
