"""The fingerprint of a run: every setting that decides a counterfactual, and the identity of every file
they name, as flat ``field: value`` pairs.

A results folder keeps its fingerprint in ``manifest.json``; a re-run into the folder with another
fingerprint would mix counterfactuals of two settings under one name, so it is refused before any work,
naming each field that differs (:func:`differences`). A file is identified by its size and a digest of
its contents, a folder by the number, total size and a digest of the files in it (reading them costs
about what loading the model does, from the page cache).
"""

from __future__ import annotations

import hashlib
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


def _digest(files: list[Path], root: Path) -> str:
    """BLAKE2b of the files' contents (and, in a folder, their relative paths), 16 hex digits."""
    total = hashlib.blake2b(digest_size=8)
    for file in files:
        total.update(file.relative_to(root).as_posix().encode() if file != root else b"")
        with file.open("rb") as handle:
            total.update(hashlib.file_digest(handle, "blake2b").digest())
    return total.hexdigest()


def _identity(path: Path) -> str:
    """``size … bytes, blake2b …`` of a file's contents; a folder's files together (count, size, digest).
    The contents, not the modification time: a copied file is the same file."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size, digest = sum(p.stat().st_size for p in files), _digest(files, path)
    return f"{len(files)} files, {size} bytes, blake2b {digest}" if path.is_dir() else f"{size} bytes, blake2b {digest}"


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


def differences(recorded: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[str]:
    """``field: recorded → current`` for every field that differs (absent on one side: ``(unset)``).

    ``defaults``: fingerprint fields of settings added in later versions, at their defaults; a field the
    recorded fingerprint lacks is no difference while the current run leaves it at its default there
    (a folder of an older version resumes unless a new setting is used).
    """
    defaults = defaults or {}
    new = {field for field in set(current) - set(recorded) if field in defaults and defaults[field] == current[field]}
    fields = sorted((set(recorded) | set(current)) - new)
    shown = {field: [repr(s[field]) if field in s else "(unset)" for s in (recorded, current)] for field in fields}
    return [f"{field}: {before} → {after}" for field, (before, after) in shown.items() if before != after]
