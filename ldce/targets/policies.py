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

    def check(self, num_classes: int) -> None:
        """Raises ``ValueError`` when this policy cannot serve a classifier of ``num_classes`` classes
        (checked once, before any work). Every classifier suits the policies that do not say otherwise."""
        return None

    def missing(self, source: int) -> str:
        """Why this policy gives an input of class ``source`` no target (the failure's reason)."""
        return f"{type(self).__name__} gives no target for class {source}"


class FromSample(TargetPolicy):
    """The target stored with each sample (``target.cls``, the metadata's ``target``, a list's target column).

    Args:
        fallback: the policy for the samples that carry no target; none: such a sample fails.
    """

    def __init__(self, fallback: TargetPolicy | None = None) -> None:
        self.fallback = fallback

    def __call__(self, keys, labels, given, indices, logits):
        if self.fallback is None:
            return given.clone()
        return torch.where(given >= 0, given, self.fallback(keys, labels, given, indices, logits))

    def check(self, num_classes: int) -> None:
        if self.fallback is not None:
            self.fallback.check(num_classes)

    def missing(self, source: int) -> str:
        return "the input carries no target (give one per input, or --model.targets; ldce explain: --target)"


class FixedTarget(TargetPolicy):
    """The same target class for every input."""

    def __init__(self, target: int) -> None:
        self.target = target

    def __call__(self, keys, labels, given, indices, logits):
        return torch.full_like(labels, self.target)

    def check(self, num_classes: int) -> None:
        if not 0 <= self.target < num_classes:
            raise ValueError(f"target {self.target} is not a class of the classifier (0 to {num_classes - 1})")


class ClassPairs(TargetPolicy):
    """A target per source label, e.g. ``{339: 340, 340: 339}`` (sorrel ↔ zebra)."""

    def __init__(self, pairs: dict[int, int]) -> None:
        self.pairs = {int(k): int(v) for k, v in pairs.items()}

    def __call__(self, keys, labels, given, indices, logits):
        return torch.tensor([self.pairs.get(int(y), NO_TARGET) for y in labels], dtype=torch.int64)

    def check(self, num_classes: int) -> None:
        outside = sorted(c for pair in self.pairs.items() for c in pair if not 0 <= c < num_classes)
        if outside:
            raise ValueError(f"class pairs name classes {outside} outside the classifier's 0 to {num_classes - 1}")

    def missing(self, source: int) -> str:
        return f"the class pairs give no target for source class {source}"


class BinaryFlip(TargetPolicy):
    """``1 − label`` for binary attributes (smiling ↔ not smiling)."""

    def __call__(self, keys, labels, given, indices, logits):
        return 1 - labels

    def check(self, num_classes: int) -> None:
        if num_classes != 2:
            raise ValueError(f"BinaryFlip (binary_flip) needs a binary classifier; this one has {num_classes} classes")


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

    def missing(self, source: int) -> str:
        return f"{self.path} gives no target for this key or index"


def _read_mapping(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"target mapping file not found: {path}")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of key or index to target class, got {type(data).__name__}")
    return {str(k): int(v) for k, v in data.items()}
