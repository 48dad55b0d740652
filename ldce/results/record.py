"""``Record``: the one definition of a ``records.jsonl`` line — written by the run, read for resume,
by ``ldce evaluate`` and by reports.

A record describes one input: ``done`` (explained; its files and facts) or ``failed`` (with a reason).
Optional fields absent from a line read as ``None``; an unknown field or a wrong type makes the line
unreadable (:class:`RecordError`), so that nothing is silently dropped when records are rewritten.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ldce.checks import check_fields

DONE, FAILED = "done", "failed"
Status = Literal["done", "failed"]


class RecordError(ValueError):
    """A line of a record file that is not a record; the message says why."""


@dataclass(frozen=True)
class RecordFiles:
    """Paths of an input's files, relative to the results folder (``None``: not written)."""

    original: str | None = None
    counterfactual: str | None = None
    consensus: str | None = None
    steps: str | None = None

    def paths(self) -> list[str]:
        """The paths that are set."""
        return [path for path in dataclasses.astuple(self) if path is not None]


@dataclass(frozen=True)
class Record:
    """One input's outcome.

    key: the sample's key as given by the data; status: ``done`` or ``failed``; written_at: Unix time;
    reason: why it failed. For ``done``: source / target class indices and names; flipped: whether the
    classifier now predicts the target; seed: the run's seed; meta: the sample's own JSON;
    source_prediction / source_confidence and prediction / confidence: the classifier on the original
    and on the counterfactual; target_confidence: ``p(target | x_cf)``; l1 / l2: ``||x − x_cf||``
    per image on [0, 1] pixels; consensus_share: mean share of steps in consensus.
    """

    key: str
    status: Status
    written_at: float
    files: RecordFiles = field(default_factory=RecordFiles)
    reason: str | None = None
    source: int | None = None
    target: int | None = None
    source_name: str | None = None
    target_name: str | None = None
    flipped: bool | None = None
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source_prediction: int | None = None
    prediction: int | None = None
    source_confidence: float | None = None
    confidence: float | None = None
    target_confidence: float | None = None
    l1: float | None = None
    l2: float | None = None
    consensus_share: float | None = None

    def __post_init__(self) -> None:
        check_fields(self)

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
