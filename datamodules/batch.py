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
    """An input that could not be used: its key and why (one line, for records and logs)."""

    key: str
    reason: str


@dataclass(frozen=True)
class InputBatch:
    """One batch of inputs.

    keys: ``B`` sample keys; images: ``(B, 3, H, W)`` float32 in [0, 1]; labels, targets, indices:
    int64 ``(B,)``, −1 where unknown (``targets``: the sample's own target; ``indices``: its position
    in its data set); meta: ``B`` JSON dicts of the samples (``{}`` where absent); failures: the
    batch's unusable inputs; skipped: keys passed over because they are already done.
    """

    keys: list[str]
    images: Tensor
    labels: Tensor
    targets: Tensor
    indices: Tensor
    meta: list[dict[str, Any]]
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @staticmethod
    def empty(image_size: int, failures: list[Failure] | None = None, skipped: list[str] | None = None) -> InputBatch:
        """A batch without usable inputs (only failures and skipped keys)."""
        none = torch.zeros(0, dtype=torch.long)
        images = torch.empty(0, 3, image_size, image_size)
        return InputBatch([], images, none, none.clone(), none.clone(), [], failures or [], skipped or [])


@runtime_checkable
class SkipsKeys(Protocol):
    """A datamodule that can pass over inputs already done (for resuming into a results folder)."""

    def skip(self, keys: set[str]) -> None:
        """Pass over ``keys`` from now on: they are not decoded and arrive as ``InputBatch.skipped``."""
