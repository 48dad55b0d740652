"""WebDataset input for ``Trainer.predict``: every sample exactly once over ranks × workers, robust decoding.

Shards are split first by rank (``RankSplitter``, from ``trainer.global_rank`` / ``trainer.world_size``),
then by dataloader worker (``webdataset.split_by_worker``); no resampling, no epochs, no shuffling.
Balance is per shard: a rank or worker without a shard yields no batch.

Batches are :class:`ldce.datamodules.batch.InputBatch`: the usable samples (decoded by
:func:`ldce.images.decode_image`), plus a :class:`Failure` for each sample that could not be used
(corrupt/truncated/missing image, an image mode that cannot be shown faithfully, an invalid label
or target, invalid JSON; a missing label is no failure: the classifier's prediction stands in) and
the keys skipped as already done. Decoding never raises: one odd file costs that file, not the run.
Local shards are checked before any model loads (every missing one named in one error), keys that
occur twice are renamed or refused, and a shard that breaks part-way gives its readable samples plus
one failure naming the shard (``ldce.datamodules.tar_reading``).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Literal

import webdataset
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from ldce.checks import class_index, validated
from ldce.datamodules.batch import UNKNOWN, Decoded, DoneInputs, Failure, Skipped, already_done, collate, failure_reason
from ldce.datamodules.masks import IMAGE_EXTENSIONS, MASK
from ldce.datamodules.tar_reading import (
    FAILURE,
    ORIGINAL_KEY,
    DuplicateKeys,
    ShardReader,
    check_local_shards,
    duplicate_renames,
    is_local,
)
from ldce.images import ResizeMode, decode_image, region_mask

log = logging.getLogger(__name__)


class SampleError(ValueError):
    """A sample that cannot be used; it becomes a failure record."""


class RankSplitter:
    """WebDataset node splitter: shard i goes to rank ``i % world_size`` (picklable for spawn workers)."""

    def __init__(self, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size

    def __call__(self, shards: Iterable[dict]) -> Iterator[dict]:
        """Yield this rank's shards (``dict(url=…)``) of the full shard stream."""
        yield from itertools.islice(shards, self.rank, None, self.world_size)


def expand_urls(urls: str | list[str]) -> list[str]:
    """Shard URLs after WebDataset's expansion (``::`` lists, ``$WDS_`` variables, ``{000..009}`` braces)."""
    items = [urls] if isinstance(urls, str) else urls
    if not isinstance(items, list) or not items or not all(isinstance(u, str) and u.strip() for u in items):
        raise ValueError(f"urls must be a non-empty string or list of non-empty strings, got {urls!r}")
    return [url for item in items for url in webdataset.shardlists.expand_urls(item)]


class SampleDecoder:
    """``map`` function: raw WebDataset sample → :class:`Decoded`, :class:`Skipped` or :class:`Failure`."""

    def __init__(self, image_size: int, resize_mode: ResizeMode, label_key: str, target_key: str, meta_key: str):
        self.image_size, self.resize_mode = image_size, resize_mode
        self.label_key, self.target_key, self.meta_key = label_key, target_key, meta_key
        self.done: DoneInputs = {}

    def __call__(self, sample: dict) -> Decoded | Skipped | Failure:
        key, shard = sample["__key__"], sample.get("__url__")
        if FAILURE in sample:
            return Failure(key, sample[FAILURE], shard, damaged_shard=True)
        try:
            return self._decode(sample, key, shard)
        except Exception as error:  # one unusable sample must not end the run: it is reported instead
            return Failure(key, failure_reason(error), shard)

    def _decode(self, sample: dict, key: str, shard: str | None) -> Decoded | Skipped:
        """Labels first (cheap; an input already done is passed over here), then the image; raises on
        anything unusable."""
        meta = self._meta(sample)
        label = self._field(sample, self.label_key, meta, "label")
        target = self._field(sample, self.target_key, meta, "target")
        if already_done(self.done, key, UNKNOWN if label is None else label, UNKNOWN if target is None else target):
            return Skipped(key)
        index = class_index(meta.get("index"), "index")
        image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        if image_ext is None:
            raise SampleError(f"missing image (none of {', '.join(IMAGE_EXTENSIONS)})")
        image = decode_image(sample[image_ext], self.image_size, self.resize_mode)
        label, target, index = (UNKNOWN if value is None else value for value in (label, target, index))
        mask = region_mask(sample.get(MASK), meta.get("box"), sample[image_ext], self.image_size, self.resize_mode)
        return Decoded(key, shard, sample.get(ORIGINAL_KEY), image, label, target, index, meta, mask)

    def _meta(self, sample: dict) -> dict:
        """The sample's JSON dict, ``{}`` when absent."""
        raw = sample.get(self.meta_key)
        meta = {} if raw is None else json.loads(raw)
        if not isinstance(meta, dict):
            raise SampleError(f"{self.meta_key!r} is not a JSON object")
        return meta

    @staticmethod
    def _field(sample: dict, entry: str, meta: dict, field: str) -> int | None:
        """The ``entry`` of the sample if present, else ``meta[field]``."""
        return class_index(sample[entry] if entry in sample else meta.get(field), field)


class WebDatasetDataModule(LightningDataModule):
    """Prediction data from WebDataset shards (see the module docstring for the batch contract).

    Args:
        urls: shard URLs: a local path, ``pipe:`` command or URL, brace patterns such as
            ``"data/shard-{000000..000009}.tar"``, or a list of those.
        batch_size: samples per batch (good and failed together); the last batch may be smaller.
        num_workers: dataloader worker processes (0: load in the main process).
        image_size: output height and width in pixels.
        resize_mode: ``center_crop`` (shorter side to ``image_size``, centre crop) or ``resize`` (squash).
        label_key: the sample entry holding the label (else the JSON's ``label``).
        target_key: the sample entry holding the target (else the JSON's ``target``).
        meta_key: the sample entry holding the sample's JSON.
        multiprocessing_context: start method of the workers (``None``: torch's default).
        duplicate_keys: a key that occurs twice in the local shards is explained under distinct names
            ``<key>@<shard>`` (``rename``) or stops the run before any model loads (``fail``).

    :meth:`skip` (called by the results writer on resume) passes over samples already done.
    """

    @validated
    def __init__(
        self,
        urls: str | list[str],
        batch_size: PositiveInt = 4,
        num_workers: NonNegativeInt = 0,
        image_size: PositiveInt = 256,
        resize_mode: ResizeMode = "center_crop",
        label_key: str = "cls",
        target_key: str = "target.cls",
        meta_key: str = "json",
        multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None,
        duplicate_keys: DuplicateKeys = "rename",
    ) -> None:
        super().__init__()
        for name, value in (("label_key", label_key), ("target_key", target_key), ("meta_key", meta_key)):
            if not value:
                raise ValueError(f"{name} must be a non-empty string")
        self.urls = expand_urls(urls)
        check_local_shards(self.urls)
        self.renames = duplicate_renames(self.urls, duplicate_keys)
        if self.renames:
            log.warning("%d inputs repeat a key of an earlier input: explained as <key>@<shard>", len(self.renames))
        remote = sum(not is_local(url) for url in self.urls)
        if remote:
            log.warning("%d shards are not local files: their keys cannot be checked for duplicates", remote)
        self.batch_size, self.num_workers, self.image_size = batch_size, num_workers, image_size
        self.multiprocessing_context = multiprocessing_context
        self.decoder = SampleDecoder(image_size, resize_mode, label_key, target_key, meta_key)

    def skip(self, done: DoneInputs) -> None:
        """Pass over the inputs done in ``done`` in every dataloader built from now on (see ``SkipsKeys``)."""
        self.decoder.done = dict(done)

    def rank_and_world_size(self) -> tuple[int, int]:
        """``(trainer.global_rank, trainer.world_size)``, or ``(0, 1)`` without a trainer."""
        return (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)

    def predict_dataset(self) -> webdataset.DataPipeline:
        """This rank's pipeline: shards → decode (or skip) → :class:`InputBatch` batches."""
        return webdataset.DataPipeline(
            webdataset.SimpleShardList(self.urls),
            RankSplitter(*self.rank_and_world_size()),
            webdataset.split_by_worker,
            ShardReader(self.renames),
            webdataset.map(self.decoder),
            webdataset.batched(
                self.batch_size, collation_fn=partial(collate, image_size=self.image_size), partial=True
            ),
        )

    def predict_dataloader(self) -> DataLoader:
        """A loader over ``predict_dataset()``; batching happens in the pipeline (``batch_size=None``)."""
        return DataLoader(
            self.predict_dataset(),
            batch_size=None,
            num_workers=self.num_workers,
            multiprocessing_context=self.multiprocessing_context if self.num_workers > 0 else None,
        )
