"""Class names: read once, from a list or a file, indexed by class."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml


def _text_names(path: Path) -> list[str]:
    """One name per line, line ``n`` naming class ``n``; trailing blank lines are ignored."""
    lines = [line.strip() for line in path.read_text().rstrip().splitlines()]
    blank = [n for n, line in enumerate(lines, start=1) if not line]
    if blank:
        raise ValueError(f"{path}: line {blank[0]} is blank; each line must name the class of its index")
    return lines


def read_class_names(names: Sequence[str] | str | os.PathLike | None) -> list[str] | None:
    """Class names from a list, or from a file: one name per line (line n = class n), or a JSON/YAML
    list or ``index: name`` map with indices 0 … K−1. ``None`` stays ``None``."""
    if names is None or not isinstance(names, (str, os.PathLike)):
        return None if names is None else [str(name) for name in names]
    path = Path(names)
    if not path.is_file():
        raise FileNotFoundError(f"class names file not found: {path}")
    if path.suffix not in (".json", ".yaml", ".yml"):
        return _text_names(path)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, Mapping):
        return [str(v) for v in data]
    indexed = {int(k): str(v) for k, v in data.items()}
    if sorted(indexed) != list(range(len(indexed))):
        raise ValueError(f"{path}: class indices must be 0 … {len(indexed) - 1} without gaps")
    return [indexed[i] for i in range(len(indexed))]


def class_name(names: Sequence[str] | None, label: int) -> str | None:
    """The name of class ``label``, or ``None`` where there are no names or it is out of range."""
    return names[label] if names and 0 <= label < len(names) else None
