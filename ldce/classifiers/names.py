"""Class names: read once, from a list or a file, indexed by class."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from ldce.checks import did_you_mean


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


def normalised(name: str) -> str:
    """A class name for matching: lower case, letters and digits only (``Ankle_boot`` ~ ``ankle boot``)."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def class_of(value: int | str, names: Sequence[str] | None, what: str) -> int:
    """The class index ``value`` names: an index (an int or a string of digits) or, with ``names``, a class
    name matched by :func:`normalised`. Raises ``ValueError`` naming ``what`` — an unknown name (with the
    closest one), a name without ``names``, an index outside ``names``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} must be a class index or name, got {type(value).__name__}")
    if isinstance(value, int) or value.strip().isdigit():
        index = int(value)
        if index < 0 or (names and index >= len(names)):
            raise ValueError(f"{what} {index} is outside the {len(names or [])} classes [0, {len(names or [])})")
        return index
    if re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value):
        raise ValueError(f"{what} {value!r} is neither a class index (a whole number from 0) nor a class name")
    if not names:
        raise ValueError(f"{what} {value!r} is a name, but no class names are given: give a class index")
    by_name = {normalised(name): index for index, name in enumerate(names)}
    if normalised(value) in by_name:
        return by_name[normalised(value)]
    raise ValueError(
        f"{what} {value!r} is not a class index or one of the {len(names)} class names{_closest(value, names)}"
    )


LISTED_NAMES = 20
"""Up to this many class names, a name matching none is answered with all of them."""


def _closest(value: str, names: Sequence[str]) -> str:
    """The hint for an unknown class name: the one name that :func:`normalised` ``value`` begins
    (``tshirt`` → ``T-shirt/top``), else the closest by spelling, else (few classes) every name."""
    starts = [name for name in names if normalised(name).startswith(normalised(value))]
    hint = did_you_mean(value, starts if len(starts) == 1 else names, cutoff=0.0 if len(starts) == 1 else 0.6)
    return hint or (f": {', '.join(names)}" if len(names) <= LISTED_NAMES else "")
