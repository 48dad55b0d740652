"""What a report shows, read from a results folder alone: its records (also of a run cut off part-way),
manifest, ``summary.json`` and ``config.yaml``."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ldce.metrics import CD, COUT, FID, LPIPS, MNAC, Closeness, CosineSimilarity, FlipRate, SplitFID
from ldce.results import store
from ldce.results.captions import STATUS_IDS, status_of
from ldce.results.manifest import MANIFEST, RunManifest, read_manifest
from ldce.results.record import Record, RecordError, run_means
from ldce.results.store import Unreadable

Outcome = Literal["flipped", "not_flipped", "already_target", "failed"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
CONFIG = "config.yaml"

HIGHER_IS_BETTER = {
    "flip_rate": FlipRate.higher_is_better,
    "target_confidence": True,
    "l1": Closeness.higher_is_better,
    "l2": Closeness.higher_is_better,
    "region_share": False,  # a smaller region: a more local explanation
    "region_confident": True,  # more composites convinced the classifier as asked
    "cout": COUT.higher_is_better,
    "lpips": LPIPS.higher_is_better,
    "s3": CosineSimilarity.higher_is_better,
    "fva": CosineSimilarity.higher_is_better,
    "fs": CosineSimilarity.higher_is_better,
    "mnac": MNAC.higher_is_better,
    "cd": CD.higher_is_better,
}
"""Which way each metric of ``summary.json`` is better, from the metric classes where there is one."""
PREFIXES = {"l1_per_": Closeness, "l2_per_": Closeness, "fid_": FID, "sfid_": SplitFID}


def higher_is_better(name: str) -> bool | None:
    """Whether a larger value of metric ``name`` is better (``None``: unknown)."""
    kinds = [kind for prefix, kind in PREFIXES.items() if name.startswith(prefix)]
    return kinds[0].higher_is_better if kinds else HIGHER_IS_BETTER.get(name)


def outcome(record: Record) -> Outcome:
    """failed; already_target (the classifier called the original the target: nothing to flip); flipped
    (it calls the counterfactual the target); or not_flipped."""
    if not record.done:
        return "failed"
    return STATUS_IDS[status_of(record.already_target, record.flipped)]


def origin(record: Record) -> str | None:
    """Where the input came from, as far as its record says: the file in its JSON's ``path`` (``ldce
    explain``, shards made by ``ldce shards``); for a duplicate key renamed, its key in its shard; for a
    failure, the file or shard that failed. ``None``: nothing beyond the key."""
    path = record.meta.get("path")
    if isinstance(path, str):
        return path
    shard = Path(record.shard).name if record.shard else None
    if record.original_key is not None:
        return f"{record.original_key} in {shard}" if shard else record.original_key
    return None if record.done else record.shard


class NotAResultsFolder(FileNotFoundError):
    """A folder without records, manifest or config: nothing an ``ldce`` run wrote."""


@dataclass(frozen=True)
class SummaryFile:
    """``summary.json`` as :class:`ldce.callbacks.summary.RunSummary` writes it (only what a report shows).

    counts: the last run's inputs by outcome; folder: the folder's done and failed inputs after it;
    evaluation: the metrics of :mod:`ldce.metrics` (``None``: undefined); evaluation_scope: which
    counterfactuals they cover; seconds: the run's time. (Its means over the records the report computes
    itself, from the records it shows.)
    """

    counts: dict[str, int] = field(default_factory=dict)
    folder: dict[str, int] = field(default_factory=dict)
    evaluation: dict[str, float | None] = field(default_factory=dict)
    evaluation_scope: str | None = None
    seconds: float | None = None

    @classmethod
    def read(cls, path: Path) -> SummaryFile | None:
        """The file's summary; ``None`` when there is none (a run still going or cut off)."""
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class Metric:
    """One value of the run: name, value (``None``: undefined), which way is better, where it comes from."""

    name: str
    value: float | None
    higher_is_better: bool | None
    section: str


@dataclass(frozen=True)
class RunFolder:
    """A results folder as a report sees it.

    records: the newest record per key, by key (done and failed); unreadable: record lines that could
    not be read; manifest / summary / config_text: ``None`` where the folder lacks them; complete:
    the run merged its records (``records.jsonl``) and wrote its summary, i.e. it ended.
    """

    path: Path
    records: list[Record]
    unreadable: list[Unreadable]
    manifest: RunManifest | None
    summary: SummaryFile | None
    config_text: str | None
    complete: bool

    def outcome_counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for record in self.records:
            counts[outcome(record)] += 1
        return counts

    def missing_records(self) -> int:
        """How many done inputs ``summary.json`` counts in the folder beyond the done records found
        (records deleted or moved since); 0 without a summary."""
        said = self.summary.folder.get("done", self.summary.counts.get("done", 0)) if self.summary else 0
        return max(0, said - sum(r.done for r in self.records))

    def class_name(self, index: int | None) -> str:
        """The manifest's name of class ``index`` (its number where there is none)."""
        names = self.manifest.class_names if self.manifest else None
        return "–" if index is None else names[index] if names and 0 <= index < len(names) else str(index)

    def metrics(self) -> list[Metric]:
        """The means over the folder's done records (computed here, so also for a partial run) and the
        last run's evaluation from ``summary.json``."""
        means = run_means([r for r in self.records if r.done]) if any(r.done for r in self.records) else {}
        evaluation = self.summary.evaluation if self.summary else {}
        return [Metric(k, _finite(v), higher_is_better(k), "records") for k, v in means.items()] + [
            Metric(k, _finite(v), higher_is_better(k), "evaluation") for k, v in evaluation.items()
        ]


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def read_folder(path: Path) -> RunFolder:
    """Read the results folder ``path``. Raises :class:`NotAResultsFolder` when it has no records, no
    manifest and no config, and ``NotADirectoryError`` when it is no folder."""
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    if not any((path / name).exists() for name in ("records", "records.jsonl", MANIFEST, CONFIG)):
        raise NotAResultsFolder(
            f"{path} is not an ldce results folder (no records/, records.jsonl, manifest or config)"
        )
    unreadable: list[Unreadable] = []
    latest = store.latest_records(store.iter_records(path, unreadable))
    merged = _merged(path / "records.jsonl")
    config = path / CONFIG
    return RunFolder(
        path=path,
        records=sorted((latest or store.latest_records(merged)).values(), key=lambda r: r.key),
        unreadable=unreadable,
        manifest=read_manifest(path),
        summary=SummaryFile.read(path / store.SUMMARY),
        config_text=config.read_text() if config.is_file() else None,
        complete=(path / store.SUMMARY).is_file() and _all_merged(latest.values(), merged),
    )


def _merged(path: Path) -> list[Record]:
    """The records of ``records.jsonl`` (what the last run that ended merged); none where it is missing."""
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [record for line in lines if (record := _record(line)) is not None]


def _record(line: str) -> Record | None:
    try:
        return Record.from_json(line)
    except RecordError:
        return None


def _all_merged(parts: Iterable[Record], merged: list[Record]) -> bool:
    """Whether every record of the parts (but those of damaged shards, which a merge may leave out) is in
    ``records.jsonl``: else a run wrote records after the last merge, and has not ended."""
    written = {(r.key, r.written_at) for r in merged}
    return all((r.key, r.written_at) in written for r in parts if not r.damaged_shard)
