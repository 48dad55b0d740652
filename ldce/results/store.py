"""The results folder: images and records written atomically, read back for resume and evaluation.

Layout of ``<output_dir>`` (``<name>`` is :func:`file_stem` of the sample's key)::

    original/<name>.png, counterfactual/<name>.png   one pair per explained input
    consensus/<name>.png                              share of steps in consensus per latent pixel
    region/<name>.png                                 with a region: where the image may differ (pixels)
    steps/<name>.gif                                  optional: x̂0 per step | consensus mask
    records/<rank>-<id>.jsonl                         one part per batch and rank (a JSON line per input)
    records.jsonl                                     all parts merged, newest record per key
    grid.png, summary.json, config.yaml, manifest.json
    report.html, report/                              the page of the folder (ldce.report) and its pictures

Every file appears by ``rename`` of a finished temporary file, and a batch's record part is written
after its images, so an input counts as done exactly when its record exists: a run killed at any
moment leaves no half-written output that a restart would take for finished work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ldce.results.record import Record, RecordError

log = logging.getLogger(__name__)


def _file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


PORTABLE = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,99}")
RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
"""Names Windows reserves, whatever the extension."""


def file_stem(key: str) -> str:
    """A unique, bounded, portable file name stem for a sample key (the record keeps the true key).

    A key of lower-case ASCII letters, digits, ``_``, ``-`` and inner dots, at most 100 characters,
    not a name Windows reserves, is its own stem. Every other key becomes an ASCII slug of it (at most
    48 characters) plus ``~`` and 16 hex digits of its SHA-256: ``~`` never occurs in a key used as
    is, so the two kinds never collide, and distinct keys differ in their digest — also on
    case-insensitive file systems, as every stem is lower case. At most 65 characters otherwise.
    """
    if PORTABLE.fullmatch(key) and not key.endswith(".") and key.split(".")[0] not in RESERVED:
        return key
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_key).strip("-")[:48]
    return f"{slug or 'key'}~{hashlib.sha256(key.encode()).hexdigest()[:16]}"


RESULTS = ("records", "records.jsonl", "original", "counterfactual", "consensus", "region", "steps", "grid.png")
SUMMARY = "summary.json"
"""The run's counts and metrics, written by ``ldce.callbacks.summary`` and read by reports."""
RESULTS += (SUMMARY, "metrics.json", "report", "report.html")
"""What a run writes into a results folder besides its config and manifest (removed by an overwrite)."""


def clear_results(output_dir: Path) -> list[str]:
    """Remove the :data:`RESULTS` entries of ``output_dir`` (nothing else); returns those removed."""
    removed = []
    for name in RESULTS:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


def atomic_write(path: Path, write: Any) -> None:
    """Create ``path`` whole or not at all: ``write(file_object)`` goes to a temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image(image: Image.Image, path: Path, **params: Any) -> None:
    atomic_write(path, lambda handle: image.save(handle, format=path.suffix.lstrip(".").upper(), **params))


def write_records(output_dir: Path, rank: int, records: list[Record]) -> None:
    """One record part for a batch of one rank."""
    if records:
        _write_jsonl(output_dir / "records" / f"{rank}-{uuid.uuid4().hex}.jsonl", records)


@dataclass(frozen=True)
class Unreadable:
    """A file or line of a results folder that could not be used: where (``file:line``), why, and the key
    of the record it belongs to (``None``: a line that is no record)."""

    where: str
    reason: str
    key: str | None = None


def iter_records(output_dir: Path, unreadable: list[Unreadable] | None = None) -> Iterator[Record]:
    """Every record of every part, in no particular order. A line that is not a record (cut off by a
    crash, edited by hand) is skipped with a warning naming file and line, and added to ``unreadable``."""
    for part in sorted((output_dir / "records").glob("*.jsonl")):
        for number, line in enumerate(part.read_text(errors="replace").splitlines(), start=1):
            try:
                yield Record.from_json(line)
            except RecordError as error:
                where = f"{part.relative_to(output_dir)}:{number}"
                log.warning("%s: skipping a line that is not a record (%s)", where, error)
                if unreadable is not None:
                    unreadable.append(Unreadable(where, str(error)))


def latest_records(records: Iterable[Record]) -> dict[str, Record]:
    """The newest record per key (by ``written_at``)."""
    latest: dict[str, Record] = {}
    for record in records:
        old = latest.get(record.key)
        if old is None or record.written_at >= old.written_at:
            latest[record.key] = record
    return latest


def has_files(output_dir: Path, record: Record, required: Sequence[str] | None = None) -> bool:
    """Whether the ``required`` files of ``record`` (default: all it names) exist."""
    paths = record.files.paths() if required is None else [getattr(record.files, name) for name in required]
    return all(path is not None and (output_dir / path).is_file() for path in paths)


def done_records(output_dir: Path, required: Sequence[str] | None = None) -> list[Record]:
    """The newest record of every key whose status is done and whose ``required`` files (default: all
    of its files) exist, sorted by key."""
    latest = latest_records(iter_records(output_dir)).values()
    return sorted((r for r in latest if r.done and has_files(output_dir, r, required)), key=lambda r: r.key)


def done_keys(output_dir: Path) -> set[str]:
    """Keys whose newest record says done and whose files all exist."""
    return {record.key for record in done_records(output_dir)}


def merge_records(output_dir: Path, run_started: float = 0.0) -> list[Record]:
    """Write ``records.jsonl``: the newest record per key, sorted by key, leaving out damaged-shard records
    written before ``run_started`` (Unix time): a shard that this run read is damaged only if this run
    says so. Returns those records."""
    latest = latest_records(iter_records(output_dir)).values()
    current = (r for r in latest if not (r.damaged_shard and r.written_at < run_started))
    records = sorted(current, key=lambda r: r.key)
    _write_jsonl(output_dir / "records.jsonl", records)
    return records


def _write_jsonl(path: Path, records: list[Record]) -> None:
    _write_text(path, "".join(r.to_json() + "\n" for r in records))


def write_json(path: Path, data: dict[str, Any]) -> None:
    _write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda handle: handle.write(data))
