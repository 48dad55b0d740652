"""``InputBatch``: what a datamodule hands to ``CounterfactualModule.predict_step`` (the batch contract).

``B`` is the number of usable samples in the batch; unusable ones travel as :class:`Failure` and
already-finished ones (resume) as skipped keys, so that every input seen is accounted for.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def failure_reason(error: Exception) -> str:
    """Why an input could not be used, one line: a ``ValueError`` is ldce's own explanation (an
    unsupported image, a missing image, an invalid label) and stands alone; any other error (the file
    system's, an image library's) keeps its type, e.g. ``OSError: image file is truncated``."""
    return str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class InputBatch:
    """One batch of inputs.

    keys: ``B`` sample keys; images: ``(B, 3, H, W)`` float32 in [0, 1]; labels, targets, indices:
    int64 ``(B,)``, −1 where unknown (``targets``: the sample's own target; ``indices``: its position
    in its data set); meta: ``B`` JSON dicts of the samples (``{}`` where absent); shards: where each
    came from (``None``: not from a shard); original_keys: the key in its shard where it was renamed
    as a duplicate (else ``None``); failures: the batch's unusable inputs; skipped: keys passed over
    because they are already done; masks: the region masks that came with the inputs ``(B, 1, H, W)``
    in [0, 1] (white: may change), NaN for an input without one (``None``: no input has one).
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
    masks: Tensor | None = None

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


DoneInputs = Mapping[str, "tuple[int, int] | None"]
"""Inputs already done (resume): key → the ``(label, target)`` the input carried when it was explained
(−1: none), or ``None`` where its record does not say (records of ldce 0.1)."""


def already_done(done: DoneInputs, key: str, label: int, target: int) -> bool:
    """Whether input ``key`` with ``label`` and ``target`` (−1: none) is done: a done record of it exists and
    it carried the same labels then — an input whose labels changed is explained again."""
    return key in done and done[key] in (None, (label, target))


@runtime_checkable
class SkipsKeys(Protocol):
    """A datamodule that can pass over inputs already done (for resuming into a results folder)."""

    def skip(self, done: DoneInputs) -> None:
        """Pass over the inputs :func:`already_done` in ``done`` from now on: their images are not decoded
        and their keys arrive as ``InputBatch.skipped``."""


@dataclass(frozen=True)
class Decoded:
    """A usable sample: its key, shard and original key (if renamed), image ``(3, H, W)`` in [0, 1],
    label, target and index (−1: unknown), its JSON and its region mask ``(1, H, W)`` (if it has one)."""

    key: str
    shard: str | None
    original_key: str | None
    image: torch.Tensor
    label: int
    target: int
    index: int
    meta: dict
    mask: Tensor | None = None


@dataclass(frozen=True)
class Skipped:
    """A sample passed over because it is already done."""

    key: str


def collate(items: list[Decoded | Skipped | Failure], image_size: int) -> InputBatch:
    """Decoded samples → an :class:`InputBatch` (failures and skipped keys kept aside)."""
    good = [item for item in items if isinstance(item, Decoded)]
    failures = [item for item in items if isinstance(item, Failure)]
    skipped = [item.key for item in items if isinstance(item, Skipped)]
    if not good:
        return InputBatch.empty(image_size, failures, skipped)
    labels, targets, indices = (
        torch.tensor([getattr(d, name) for d in good], dtype=torch.long) for name in ("label", "target", "index")
    )
    return InputBatch(
        keys=[d.key for d in good],
        images=torch.stack([d.image for d in good]),
        labels=labels,
        targets=targets,
        indices=indices,
        meta=[d.meta for d in good],
        shards=[d.shard for d in good],
        original_keys=[d.original_key for d in good],
        failures=failures,
        skipped=skipped,
        masks=_masks(good),
    )


def _masks(good: list[Decoded]) -> Tensor | None:
    """The samples' masks ``(B, 1, H, W)``, NaN where a sample has none (``None`` when none has one)."""
    if all(d.mask is None for d in good):
        return None
    missing = torch.full_like(good[0].image[:1], float("nan"))
    return torch.stack([missing if d.mask is None else d.mask for d in good])
