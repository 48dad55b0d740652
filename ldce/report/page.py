"""``report.html``: one static page of a results folder — settings, counts, metrics and every input with
its pictures — rendered with Jinja2 from :class:`~ldce.report.folder.RunFolder`.

The page needs no server and no network: it shows the folder's PNGs (and step GIFs) by relative path,
and the pictures it draws itself under ``report/`` (difference images, their colour bar, confidence
plots). Its table sorts by any column and filters by text and outcome; ``report.html?status=failed&q=coat``
opens filtered.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from PIL import Image

import ldce
from ldce.report.folder import Outcome, RunFolder, origin, outcome, read_folder
from ldce.report.pictures import (
    ConfidencePlots,
    peak,
    save_colour_bar,
    save_difference,
    shared_scale,
    signed_difference,
)
from ldce.results import store
from ldce.results.record import Record

log = logging.getLogger(__name__)

PAGE, PICTURES = "report.html", "report"
VIDEOS = (".mp4", ".webm")
"""Step recordings shown as ``<video>`` (any other as ``<img>``, e.g. a GIF)."""
EAGER_ROWS = 100
"""Rows whose pictures load with the page; those of later rows load as they scroll into view."""
OUTCOME_LABELS: dict[Outcome, str] = {
    "flipped": "flipped",
    "not_flipped": "not flipped",
    "already_target": "already target",
    "failed": "failed",
}


@dataclass(frozen=True)
class Picture:
    """An image or video on the page: its path relative to the results folder, what it shows, and —
    for a file its record names that is not there or cannot be decoded — why it shows a placeholder
    instead (``missing`` / ``unreadable``), so that every row keeps its columns."""

    path: str | None
    caption: str
    problem: str | None = None

    @property
    def video(self) -> bool:
        return self.path is not None and Path(self.path).suffix.lower() in VIDEOS


@dataclass(frozen=True)
class Row:
    """One input of the table: its record, outcome, class names (source → target; the classifier's
    prediction on the original, ``before``, and on the counterfactual, ``after``), where it came from
    (:func:`~ldce.report.folder.origin`) and pictures."""

    record: Record
    outcome: Outcome
    origin: str | None
    source: str
    target: str
    before: str
    after: str
    pictures: list[Picture]
    plot: str | None


def _present(folder: Path, path: str | None) -> str | None:
    return path if path is not None and (folder / path).is_file() else None


def _problem(folder: Path, path: str) -> str | None:
    """Why the file at ``path`` cannot be shown (``missing``, ``unreadable``: PIL cannot verify it), or
    ``None``. Videos are only checked to exist."""
    if not (folder / path).is_file():
        return "missing"
    if Path(path).suffix.lower() in VIDEOS:
        return None
    try:
        with Image.open(folder / path) as image:
            image.verify()  # reads the file's structure (PNG: chunk checksums), not its pixels
    except (OSError, ValueError, SyntaxError):
        return "unreadable"
    return None


def _pictures(folder: Path, record: Record, difference: str | None) -> list[Picture]:
    """The input's pictures in fixed columns: original, counterfactual, difference, and the consensus,
    region and step video its record names; a file that is missing or unreadable is a placeholder."""
    files = record.files
    named = [(files.consensus, "consensus"), (files.region, "region"), (files.steps, "step video")]
    shown = [(files.original, "original"), (files.counterfactual, "counterfactual")]
    pictures = [Picture(path, caption, _problem(folder, path)) for path, caption in shown + named if path]
    drawn = Picture(difference, "difference", None if difference else "missing")
    return [*pictures[:2], drawn, *pictures[2:]]


def _differences(run: RunFolder) -> tuple[dict[str, str], float | None]:
    """Write each done input's signed difference image on one shared scale; returns their paths by key
    and the scale (``None``: no pair to compare). Two passes over the images (the scale, then the
    pictures), so that memory does not grow with the number of inputs; a pair that cannot be read is
    left out with a warning (the page shows what it can)."""
    pairs = {
        r.key: (run.path / r.files.original, run.path / r.files.counterfactual)
        for r in run.records
        if r.done and _present(run.path, r.files.original) and _present(run.path, r.files.counterfactual)
    }
    peaks = {key: value for key, pair in pairs.items() if (value := _peak(key, *pair)) is not None}
    if not peaks:
        return {}, None
    scale = shared_scale(peaks.values())
    paths = {key: f"{PICTURES}/difference/{store.file_stem(key)}.png" for key in peaks}
    for key in peaks:
        save_difference(signed_difference(*pairs[key]), scale, run.path / paths[key])
    save_colour_bar(scale, run.path / PICTURES / "difference_scale.png")
    return paths, scale


def _peak(key: str, original: Path, counterfactual: Path) -> float | None:
    try:
        return peak(signed_difference(original, counterfactual))
    except (OSError, ValueError) as error:
        log.warning("report: no difference image for %r: %s", key, error)
        return None


def _plots(run: RunFolder) -> dict[str, str]:
    """Write the confidence plot of every record that has confidence steps; returns their paths by key."""
    plots, paths = ConfidencePlots(), {}
    for record in run.records:
        if record.confidence_steps:
            paths[record.key] = f"{PICTURES}/confidence/{store.file_stem(record.key)}.png"
            plots.save(record.confidence_steps, run.path / paths[record.key])
    return paths


def rows(run: RunFolder, differences: dict[str, str], plots: dict[str, str]) -> list[Row]:
    """The table's rows, by key."""
    return [
        Row(
            record=r,
            outcome=outcome(r),
            origin=origin(r),
            source=r.source_name or run.class_name(r.source),
            target=r.target_name or run.class_name(r.target),
            before=run.class_name(r.source_prediction),
            after=run.class_name(r.prediction),
            pictures=_pictures(run.path, r, differences.get(r.key)) if r.done else [],
            plot=plots.get(r.key),
        )
        for r in run.records
    ]


def render(run: RunFolder, table: list[Row], scale: float | None) -> str:
    """The page's HTML."""
    environment = Environment(loader=PackageLoader("ldce.report"), autoescape=True, undefined=StrictUndefined)
    fingerprint = run.manifest.fingerprint if run.manifest and run.manifest.fingerprint else {}
    return environment.get_template("report.html.j2").render(
        run=run,
        rows=table,
        counts=run.outcome_counts(),
        outcomes=OUTCOME_LABELS,
        metrics=run.metrics(),
        settings=sorted(fingerprint.items()),
        scale=scale,
        has_region=any(r.record.region_share is not None for r in table),
        has_consensus=any(r.record.consensus_share is not None for r in table),
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        version=ldce.__version__,
        eager_rows=EAGER_ROWS,
    )


def write_report(results: str) -> Path:
    """Write report.html of a results folder.

    Writes ``<results>/report.html`` and its pictures under ``<results>/report/`` from the folder alone;
    returns the page's path. Works on the folder of a run that is still going or was cut off: the page
    shows the records written so far.

    Args:
        results: an ``ldce predict`` / ``ldce explain`` results folder.

    Raises:
        NotADirectoryError: ``results`` is no folder. FileNotFoundError: it holds nothing a run wrote.
    """
    run = read_folder(Path(results))
    shutil.rmtree(run.path / PICTURES, ignore_errors=True)  # pictures of records that no longer exist go too
    differences, scale = _differences(run)
    html = render(run, rows(run, differences, _plots(run)), scale)
    page = run.path / PAGE
    store.atomic_write(page, lambda handle: handle.write(html.encode()))
    return page
