"""``InputBatch``: what a datamodule hands to ``CounterfactualModule.predict_step`` (the batch contract).

``B`` is the number of usable samples in the batch; unusable ones travel as :class:`Failure` and
already-finished ones (resume) as skipped keys, so that every input seen is accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

UNKNOWN = -1
"""``labels``, ``targets`` and ``indices`` hold −1 where a sample has none."""


@dataclass(frozen=True)
class Failure:
    """An input that could not be used: its key, why (one line) and the shard it came from.

    ``damaged_shard``: the failure stands for the unreadable rest of a shard (its key is the shard's
    URL), not for one input.
    """

    key: str
    reason: str
    shard: str | None = None
    damaged_shard: bool = False


@dataclass(frozen=True)
class InputBatch:
    """One batch of inputs.

    keys: ``B`` sample keys; images: ``(B, 3, H, W)`` float32 in [0, 1]; labels, targets, indices:
    int64 ``(B,)``, −1 where unknown (``targets``: the sample's own target; ``indices``: its position
    in its data set); meta: ``B`` JSON dicts of the samples (``{}`` where absent); shards: where each
    came from (``None``: not from a shard); original_keys: the key in its shard where it was renamed
    as a duplicate (else ``None``); failures: the batch's unusable inputs; skipped: keys passed over
    because they are already done.
    """

    keys: list[str]
    images: Tensor
    labels: Tensor
    targets: Tensor
    indices: Tensor
    meta: list[dict[str, Any]]
    shards: list[str | None] = field(default_factory=list)
    original_keys: list[str | None] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("shards", "original_keys"):
            if not getattr(self, name):
                object.__setattr__(self, name, [None] * len(self.keys))

    @staticmethod
    def empty(image_size: int, failures: list[Failure] | None = None, skipped: list[str] | None = None) -> InputBatch:
        """A batch without usable inputs (only failures and skipped keys)."""
        none = torch.zeros(0, dtype=torch.long)
        images = torch.empty(0, 3, image_size, image_size)
        failures, skipped = failures or [], skipped or []
        return InputBatch([], images, none, none.clone(), none.clone(), [], failures=failures, skipped=skipped)


@runtime_checkable
class SkipsKeys(Protocol):
    """A datamodule that can pass over inputs already done (for resuming into a results folder)."""

    def skip(self, keys: set[str]) -> None:
        """Pass over ``keys`` from now on: they are not decoded and arrive as ``InputBatch.skipped``."""
