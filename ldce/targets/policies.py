"""Target policies: which class each input's counterfactual should reach.

A policy maps a batch to target classes ``(B,)``, with ``-1`` where it has none for a sample
(that sample is then reported as failed, not guessed). Policies are typed classes so that a
config selects one with ``class_path`` / ``init_args``.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml
from torch import Tensor

from ldce.classifiers.logits import is_binary

NO_TARGET = -1


class TargetPolicy(abc.ABC):
    """Chooses targets from what a batch carries and the classifier's logits on the originals."""

    @abc.abstractmethod
    def __call__(self, keys: Sequence[str], labels: Tensor, given: Tensor, indices: Tensor, logits: Tensor) -> Tensor:
        """keys: ``B`` sample keys; labels, given (the sample's own target or −1), indices (position
        in the data set or −1): int64 ``(B,)``; logits: ``(B, K)`` or ``(B,)``. Returns int64 ``(B,)``."""


class FromSample(TargetPolicy):
    """The target stored with each sample (``target.cls`` or the metadata's ``target``)."""

    def __call__(self, keys, labels, given, indices, logits):
        return given.clone()


class FixedTarget(TargetPolicy):
    """The same target class for every input."""

    def __init__(self, target: int) -> None:
        self.target = target

    def __call__(self, keys, labels, given, indices, logits):
        return torch.full_like(labels, self.target)


class ClassPairs(TargetPolicy):
    """A target per source label, e.g. ``{339: 340, 340: 339}`` (sorrel ↔ zebra)."""

    def __init__(self, pairs: dict[int, int]) -> None:
        self.pairs = {int(k): int(v) for k, v in pairs.items()}

    def __call__(self, keys, labels, given, indices, logits):
        return torch.tensor([self.pairs.get(int(y), NO_TARGET) for y in labels], dtype=torch.int64)


class BinaryFlip(TargetPolicy):
    """``1 − label`` for binary attributes (smiling ↔ not smiling)."""

    def __call__(self, keys, labels, given, indices, logits):
        return 1 - labels


class SecondMostLikely(TargetPolicy):
    """The classifier's second most likely class on the original (binary: the other decision)."""

    def __call__(self, keys, labels, given, indices, logits):
        if is_binary(logits):
            return (logits <= 0).long()
        return logits.topk(2, dim=1).indices[:, 1].long()


class TargetMap(TargetPolicy):
    """A file mapping sample keys or data-set indices to targets.

    YAML or JSON, ``{key_or_index: target}`` — the original project's ``image_idx_to_tgt.yaml``
    (``index: target``) is read as is. Keys are looked up first, then indices.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.mapping = _read_mapping(Path(path))

    def __call__(self, keys, labels, given, indices, logits):
        found = [
            self.mapping.get(k, self.mapping.get(str(int(i)), NO_TARGET)) for k, i in zip(keys, indices, strict=True)
        ]
        return torch.tensor(found, dtype=torch.int64)


def _read_mapping(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"target mapping file not found: {path}")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of key or index to target class, got {type(data).__name__}")
    return {str(k): int(v) for k, v in data.items()}
