"""``manifest.json``: what a results folder says about the run that wrote it.

Written at the start of every run into the results folder; ``ldce evaluate`` reads the explained
classifier and the metrics from it, so that evaluation does not depend on the layout of the run's
YAML config. Folders written before the manifest existed are read from their ``config.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ldce.compat.legacy import migrate_config
from ldce.results.store import write_json

MANIFEST = "manifest.json"
FORMAT = "ldce.results/1"


@dataclass(frozen=True)
class RunManifest:
    """The run's identity and what evaluation needs.

    classifier: the explained classifier's config (``class_path`` / ``init_args``, as jsonargparse
    instantiates it), ``None`` if unknown; metrics: the metrics config group (``MetricsConfig`` fields)
    or ``None``; class_names: names by class index; ldce_version: the version that wrote the folder;
    fingerprint: every setting that decides a counterfactual (``ldce.results.fingerprint``).
    """

    classifier: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    class_names: list[str] | None = None
    ldce_version: str = ""
    fingerprint: dict[str, Any] | None = None
    format: str = FORMAT

    def write(self, folder: Path) -> None:
        write_json(folder / MANIFEST, asdict(self))


def _legacy(folder: Path) -> RunManifest | None:
    """A manifest from a folder's ``config.yaml`` (folders written by ldce 0.1), read in the current form."""
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    config, _ = migrate_config(yaml.safe_load(path.read_text()) or {})
    model = config.get("model") or {}
    names = model.get("class_names")
    metrics = (config.get("summary") or {}).get("metrics")
    return RunManifest(model.get("classifier"), metrics, names if isinstance(names, list) else None)


def read_manifest(folder: Path) -> RunManifest | None:
    """The folder's manifest (or one read from a legacy ``config.yaml``); ``None`` if it has neither."""
    path = folder / MANIFEST
    if not path.is_file():
        return _legacy(folder)
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format {data.get('format')!r} (expected {FORMAT!r})")
    return RunManifest(**data)
