"""Prediction data from image files, no shards needed (``ldce explain``).

``inputs`` are image files, folders (flat or ImageFolder trees), glob patterns and CSV/JSON lists, read
by :func:`ldce.datamodules.folders.collect_items`; keys are their relative paths as ``ldce shards``
makes them. Labels are optional: an input without one arrives with label −1 and the runner takes the
classifier's prediction as its source (and says so in its record). Batches, failures and resume are
those of the WebDataset datamodule (:class:`ldce.datamodules.batch.InputBatch`); inputs are split over
processes by position.
"""

from __future__ import annotations

import logging
from functools import partial

from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from ldce.checks import validated
from ldce.classifiers.names import read_class_names
from ldce.datamodules.batch import UNKNOWN, Decoded, DoneInputs, Failure, Skipped, already_done, collate, failure_reason
from ldce.datamodules.folders import ShardItem, collect_items
from ldce.datamodules.keys import unique_keys
from ldce.images import ResizeMode, decode_image, region_mask

log = logging.getLogger(__name__)


class ImageFiles(Dataset):
    """One decoded input per item: :class:`Decoded`, or :class:`Failure` for an unreadable image,
    or :class:`Skipped` for a key already done."""

    def __init__(
        self, items: list[ShardItem], keys: list[str], image_size: int, resize_mode: ResizeMode, done: DoneInputs
    ) -> None:
        self.items, self.keys, self.done = items, keys, done
        self.image_size, self.resize_mode = image_size, resize_mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded | Failure | Skipped:
        item, key = self.items[index], self.keys[index]
        label, target = (UNKNOWN if value is None else value for value in (item.label, item.target))
        if already_done(self.done, key, label, target):
            return Skipped(key)
        try:
            data = item.path.read_bytes()
            image = decode_image(data, self.image_size, self.resize_mode)
            mask = None if item.mask is None else item.mask.read_bytes()
            region = region_mask(mask, None, data, self.image_size, self.resize_mode)
        except Exception as error:  # one unusable file costs that file, not the run
            return Failure(key, failure_reason(error), str(item.path))
        meta = {"path": str(item.path)} | ({} if item.class_name is None else {"class_name": item.class_name})
        return Decoded(key, str(item.path), None, image, label, target, UNKNOWN, meta, region)


class ImageFilesDataModule(LightningDataModule):
    """Image files as prediction data (see the module docstring).

    Args:
        inputs: image files, folders, glob patterns (``"photos/*.jpg"``) and ``.csv``/``.json`` lists
            (rows ``path[,label[,target]]``, labels as indices or class names).
        image_size: side of the square images fed to the model, in pixels.
        resize_mode: ``center_crop`` (shorter side to ``image_size``, centre crop) or ``resize`` (squash).
        batch_size: inputs per batch.
        num_workers: dataloader worker processes (0: load in the main process).
        class_names: class names (a list or a file) to match ImageFolder folders and name labels with.
        root: base folder of relative paths in a list (default: the list's folder).
    """

    @validated
    def __init__(
        self,
        inputs: str | list[str],
        image_size: PositiveInt = 256,
        resize_mode: ResizeMode = "center_crop",
        batch_size: PositiveInt = 4,
        num_workers: NonNegativeInt = 0,
        class_names: list[str] | str | None = None,
        root: str | None = None,
    ) -> None:
        super().__init__()
        names = read_class_names(class_names)
        sources = [inputs] if isinstance(inputs, str) else inputs
        self.items = _once([item for source in sources for item in collect_items(source, names, root)])
        if not self.items:
            raise ValueError(f"no images in {sources}")
        self.keys = unique_keys(self.items)
        self.image_size, self.resize_mode = image_size, resize_mode
        self.batch_size, self.num_workers = batch_size, num_workers
        self.done: DoneInputs = {}

    def skip(self, done: DoneInputs) -> None:
        """Pass over the inputs done in ``done`` in every dataloader built from now on (see ``SkipsKeys``)."""
        self.done = dict(done)

    def predict_dataloader(self) -> DataLoader:
        rank, world = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        share = list(range(rank, len(self.items), world))
        files = ImageFiles(
            [self.items[i] for i in share],
            [self.keys[i] for i in share],
            self.image_size,
            self.resize_mode,
            self.done,
        )
        batch = partial(collate, image_size=self.image_size)
        return DataLoader(files, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=batch)


def _once(items: list[ShardItem]) -> list[ShardItem]:
    """``items`` with each input taken once: the same file with the same label and target, named by two
    sources, is explained once (the same file with other labels or targets is another input)."""
    first: dict[tuple, ShardItem] = {}
    for item in items:
        first.setdefault((item.path.resolve(), item.label, item.target), item)
    if len(first) < len(items):
        log.info(
            "%d inputs repeat an earlier one (file, label and target); each is explained once", len(items) - len(first)
        )
    return list(first.values())
