"""The fingerprint of a run: every setting that decides a counterfactual, and the identity of every file
they name, as flat ``field: value`` pairs.

A results folder keeps its fingerprint in ``manifest.json``; a re-run into the folder with another
fingerprint would mix counterfactuals of two settings under one name, so it is refused before any work,
naming each field that differs (:func:`differences`). A file is identified by its size and modification
time, a folder by the number, total size and newest modification time of the files in it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_SUFFIX = " (file)"


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of nested dicts (lists stay leaves)."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}").items()}
    return {prefix: value}


def _identity(path: Path) -> str:
    """``size … bytes, modified …`` of a file; the same summed over the files of a folder."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    size, newest = sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    return (
        f"{len(files)} files, {size} bytes, newest modified {newest}"
        if path.is_dir()
        else f"{size} bytes, modified {newest}"
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def fingerprint(settings: dict[str, Any]) -> dict[str, Any]:
    """Flat fingerprint of ``settings`` (``{"model.method": {...}, "data.image_size": 256, …}``): every
    leaf, plus the identity of every leaf string that names an existing local file or folder."""
    flat = {k: v for name, value in settings.items() for k, v in _flat(value, name).items()}
    files = {}
    for field, value in flat.items():
        for text in _strings(value):
            if text and os.path.exists(text):
                files[field + FILE_SUFFIX] = _identity(Path(text))
    return json.loads(json.dumps(flat | files, default=str))  # as a manifest reads it back (lists, not tuples)


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: recorded → current`` for every field that differs (absent on one side: ``—``)."""
    fields = sorted(set(recorded) | set(current))
    return [
        f"{field}: {recorded.get(field, '—')!r} → {current.get(field, '—')!r}"
        for field in fields
        if recorded.get(field, "—") != current.get(field, "—")
    ]
