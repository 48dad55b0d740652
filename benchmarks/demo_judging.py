"""Judging the demo's counterfactuals, shared by ``demo_quality.py`` and ``speed_quality.py``.

``scores`` per image (flip on the explained classifier, agreement of the *independent* judge
classifier with the target, L1 / L2, changed pixels), :class:`Row` (those scores plus COUT and FID in
the judge's penultimate feature space: not Inception FID), ``quickstart_config`` (the guidance
hyperparameters of a ``ldce predict`` config) and ``flip_rate`` (over the images the explained
classifier does not already call the target, as ``ldce.metrics.FlipRate``) and ``heldout_slice``
(a prefix of the held-out test images).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import Tensor

from ldce import demo
from ldce.compat.legacy import migrate_config
from ldce.method.config import LDCEConfig
from ldce.metrics import COUT, FID
from ldce.metrics.features import PenultimateFeatures


def scores(
    explained: torch.nn.Module,
    judge: torch.nn.Module,
    images: Tensor,
    counterfactuals: Tensor,
    sources: Tensor,
    targets: Tensor,
) -> dict[str, Tensor]:
    with torch.no_grad():
        flipped = explained(counterfactuals).argmax(1) == targets
        already = explained(images).argmax(1) == targets
        judged = judge(counterfactuals).argmax(1)
    diff = (counterfactuals - images).flatten(1)
    return {
        "flip": flipped.float(),
        "open": (~already).float(),
        "agree": (judged == targets).float(),
        "source": (judged == sources).float(),
        "l1": diff.abs().sum(1),
        "l2": diff.norm(dim=1),
        "changed": ((counterfactuals - images).abs().amax(1) > 8 / 255).float().flatten(1).mean(1),
    }


class Row:
    """Per-image :func:`scores` plus COUT (explained classifier) and FID in the judge's feature space."""

    def __init__(self, explained: torch.nn.Module, judge: torch.nn.Module, judge_features: PenultimateFeatures) -> None:
        self.explained, self.judge = explained, judge
        self.parts: list[dict[str, Tensor]] = []
        self.cout, self.fid, self.features = COUT(explained), FID(judge_features.num_features), judge_features

    def update(self, images: Tensor, counterfactuals: Tensor, sources: Tensor, targets: Tensor) -> None:
        """Judge one batch: images / counterfactuals ``(B, 3, H, W)`` in [0, 1], sources / targets ``(B,)``."""
        self.parts.append(scores(self.explained, self.judge, images, counterfactuals, sources, targets))
        self.cout.update(images, counterfactuals, sources, targets)
        with torch.no_grad():
            self.fid.update(self.features(images), self.features(counterfactuals))

    def summary(self) -> dict[str, Tensor]:
        joined = {k: torch.cat([p[k] for p in self.parts]) for k in self.parts[0]}
        return joined | {"cout": self.cout.compute(), "fid": self.fid.compute()}


def quickstart_config(path: Path) -> LDCEConfig:
    """The guidance hyperparameters (``model.method``) of a ``ldce predict`` config, read as ldce reads configs."""
    config, _ = migrate_config(yaml.safe_load(path.read_text()))
    return LDCEConfig(**config["model"]["method"])


def flip_rate(summary: dict[str, Tensor]) -> Tensor:
    """Share of flipped counterfactuals among the images not already called the target (0-dim)."""
    return (summary["flip"] * summary["open"]).sum() / summary["open"].sum()


def heldout_slice(count: int, batch_size: int, per_class: int = 25):
    """The first ``count`` of the demo's held-out test images (``per_class`` of each source class, in
    index order, so any prefix mixes the classes), as ``(keys, images, labels, targets)`` batches."""
    batches, left = [], count
    for keys, images, labels, targets in demo.heldout_batches(per_class, batch_size):
        if left <= 0:
            break
        batches.append((keys[:left], images[:left], labels[:left], targets[:left]))
        left -= len(keys)
    return batches
