"""``Record``: the one definition of a ``records.jsonl`` line — written by the run, read for resume,
by ``ldce evaluate`` and by reports.

A record describes one input: ``done`` (explained; its files and facts) or ``failed`` (with a reason).
Optional fields absent from a line read as ``None``; an unknown field or a wrong type makes the line
unreadable (:class:`RecordError`), so that nothing is silently dropped when records are rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ldce.checks import check_fields

DONE, FAILED = "done", "failed"
Status = Literal["done", "failed"]


class RecordError(ValueError):
    """A line of a record file that is not a record; the message says why."""


DONE_FACTS = ("source", "target", "flipped", "target_confidence", "l1", "l2")
"""What every done record states (the run means and ``ldce evaluate`` use them)."""


@dataclass(frozen=True)
class RecordFiles:
    """Paths of an input's files, relative to the results folder (``None``: not written)."""

    original: str | None = None
    counterfactual: str | None = None
    consensus: str | None = None
    steps: str | None = None
    region: str | None = None

    def paths(self) -> list[str]:
        """The paths that are set."""
        return [path for path in dataclasses.astuple(self) if path is not None]


@dataclass(frozen=True)
class Record:
    """One input's outcome.

    key: the sample's key (``<key>@<shard>`` for a key that occurs twice, see ``original_key``; a shard's
    URL for the unreadable rest of a damaged shard); status: ``done`` or ``failed``; written_at: Unix
    time; reason: why it failed; shard: the shard it came from; original_key: its key in that shard,
    where it was renamed as a duplicate; damaged_shard: the record stands for a shard's unreadable rest.
    For ``done``: source / target class indices and names; source_predicted: the input had no label and
    its source is the classifier's prediction; already_target: the classifier already predicted the
    target on the original (not counted in the flip rate); flipped: whether the classifier now predicts
    the target; seed: the run's seed; meta: the sample's own JSON;
    source_prediction / source_confidence and prediction / confidence: the classifier on the original
    and on the counterfactual (source_prediction_name / prediction_name: their class names, where
    known); target_confidence: ``p(target | x_cf)``; l1 / l2: ``||x − x_cf||``
    per image on [0, 1] pixels; consensus_share: mean share of steps in consensus; with a region
    (``model.region``): region_share, the mean of the pixel region ``M`` (1.0 where the uncomposited
    counterfactual was kept), region_growth, the times the region grew to keep the flip (−1: the
    uncomposited counterfactual was kept), and region_confident, whether the composite reached
    ``model.region.confidence`` (false: a fallback was kept; absent without a composite); with
    ``model.method.stop_after_flip``: guidance_stopped_at, the first guided step (0-based) run with
    classifier-free guidance only (−1: never stopped);
    confidence_steps: ``p(target | x̂0)`` over the guided steps, in denoising order (the last measured
    value on steps without a classifier evaluation), thinned to at most 50 evenly spaced steps (the
    first and last kept).
    """

    key: str
    status: Status
    written_at: float
    files: RecordFiles = field(default_factory=RecordFiles)
    reason: str | None = None
    shard: str | None = None
    original_key: str | None = None
    damaged_shard: bool | None = None
    source: int | None = None
    source_predicted: bool | None = None
    target: int | None = None
    already_target: bool | None = None
    input_label: int | None = None
    input_target: int | None = None
    source_name: str | None = None
    target_name: str | None = None
    flipped: bool | None = None
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source_prediction: int | None = None
    prediction: int | None = None
    source_prediction_name: str | None = None
    prediction_name: str | None = None
    source_confidence: float | None = None
    confidence: float | None = None
    target_confidence: float | None = None
    l1: float | None = None
    l2: float | None = None
    consensus_share: float | None = None
    region_share: float | None = None
    region_growth: int | None = None
    region_confident: bool | None = None
    guidance_stopped_at: int | None = None
    confidence_steps: list[float] | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        missing = [name for name in DONE_FACTS if getattr(self, name) is None] if self.done else []
        if missing or (self.done and None in (self.files.original, self.files.counterfactual)):
            raise RecordError(f"a done record without {', '.join(missing) or 'its image files'}")

    def input_classes(self) -> tuple[int, int] | None:
        """``(input_label, input_target)`` as the input carried them (−1: none); ``None`` where unrecorded."""
        return None if self.input_label is None else (self.input_label, self.input_target)

    @property
    def done(self) -> bool:
        return self.status == DONE

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record, without unset (``None``) fields."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        data["files"] = {k: v for k, v in data["files"].items() if v is not None}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Record:
        """The record of a JSON object; :class:`RecordError` when it is not one."""
        if not isinstance(data, dict):
            raise RecordError(f"expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecordError(f"unknown fields {unknown}")
        files = data.get("files") or {}
        try:
            return cls(**{**data, "files": RecordFiles(**files)})
        except (TypeError, ValueError) as error:
            raise RecordError(str(error)) from error

    @classmethod
    def from_json(cls, line: str) -> Record:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecordError(f"not JSON ({error})") from error
        return cls.from_dict(data)


def thinned(values: list[float], most: int = 50) -> list[float]:
    """At most ``most`` evenly spaced ``values``, the first and the last kept."""
    if len(values) <= most:
        return list(values)
    return [values[round(i * (len(values) - 1) / (most - 1))] for i in range(most)]


def run_means(records: list[Record]) -> dict[str, float | None]:
    """Means over the records of the run's own facts: ``flipped`` (as flip_rate, over the inputs not
    already at their target), ``target_confidence``, ``l1``, ``l2`` and, where records have a region,
    their ``region_share`` and the share ``region_confident`` of their composites that reached the
    region's ``confidence`` (over the inputs not already at their target, as the flip rate)."""
    values = {
        "flip_rate": [float(r.flipped) for r in records if not r.already_target],
        "target_confidence": [r.target_confidence for r in records],
        "l1": [r.l1 for r in records],
        "l2": [r.l2 for r in records],
    }
    regions = {
        "region_share": [r.region_share for r in records if r.region_share is not None],
        "region_confident": [
            float(r.region_confident) for r in records if r.region_confident is not None and not r.already_target
        ],
    }
    means = {name: math.fsum(v) / len(v) if v else None for name, v in values.items()}
    return means | {name: math.fsum(v) / len(v) for name, v in regions.items() if v}
