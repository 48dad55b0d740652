"""``Prediction``: what ``CounterfactualModule.predict_step`` hands to the callbacks for one batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ldce.classifiers.names import class_name
from ldce.datamodules.batch import Failure
from ldce.method import Counterfactuals


@dataclass(frozen=True)
class Prediction:
    """One batch's explained inputs (``B``, all tensors on the CPU), failures and skipped keys.

    keys / meta / shards / original_keys: per explained input (see ``InputBatch``); labels / targets:
    int64 ``(B,)`` source and target classes; source_predicted: bool ``(B,)``, the source is the
    classifier's prediction (the input had no label); already_target: bool ``(B,)``, the classifier
    already predicts the target on the original (such inputs do not count in the flip rate);
    input_labels / input_targets: int64 ``(B,)``, the label and target the inputs carried (−1: none);
    originals: ``(B, 3, H, W)`` float32 in [0, 1]; result: the counterfactuals and their facts
    (``None`` when nothing in the batch was explained); class_names: names by class index (``None``:
    none given); seed: the run's seed; failures: unusable inputs; skipped: keys already done.
    """

    keys: list[str]
    meta: list[dict[str, Any]]
    shards: list[str | None]
    original_keys: list[str | None]
    labels: Tensor
    targets: Tensor
    source_predicted: Tensor
    already_target: Tensor
    input_labels: Tensor
    input_targets: Tensor
    originals: Tensor
    result: Counterfactuals | None
    class_names: list[str] | None
    seed: int
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def name(self, label: int) -> str | None:
        """The name of class ``label`` (``None`` without names or out of range)."""
        return class_name(self.class_names, label)

    def label(self, label: int) -> str:
        """``"4: Coat"``, or ``"4"`` without a name: how pictures and tables show a class."""
        name = self.name(label)
        return str(label) if name is None else f"{label}: {name}"
