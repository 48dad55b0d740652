"""Sample keys: a WebDataset-safe key per input, made unique where two paths would give the same one."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

from ldce.datamodules.folders import ShardItem


def sample_key(relpath: str) -> str:
    """A WebDataset-safe key for the file at ``relpath``, the same whatever other files are given.

    ``relpath`` without extension, ``/`` → ``_``: ``imgs/coat.png`` is ``imgs_coat``. A name with any
    other character outside ``[A-Za-z0-9_-]`` (spaces, dots, ``+``, non-ASCII) becomes ``_`` there plus
    ``_`` and 10 hex digits of the path's SHA-1, so that ``x b.png`` and ``x+b.png`` never share a key.
    """
    stem = str(PurePosixPath(relpath).with_suffix(""))
    key = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    return key if re.fullmatch(r"[A-Za-z0-9_/-]+", stem) else _hashed(key, relpath)


def _hashed(key: str, relpath: str) -> str:
    return f"{key}_{hashlib.sha1(relpath.encode()).hexdigest()[:10]}"


def unique_keys(items: Sequence[ShardItem]) -> list[str]:
    """:func:`sample_key` of each item; where several items would share one (``a.png`` and ``a.jpg``,
    ``a/b.png`` and ``a_b.png``, one file with two targets), each of them gets a hash of its path (and,
    for a path given more than once, its label and target) appended — never only the later ones, so a
    file added later never takes over the key of one explained before.

    Raises ``ValueError`` for the same path with the same label and target given twice.
    """
    keys = [sample_key(item.relpath) for item in items]
    shared, paths = _repeated(keys), Counter(item.relpath for item in items)
    keys = [
        _hashed(key, _identity(item, paths[item.relpath] > 1)) if key in shared else key
        for key, item in zip(keys, items, strict=True)
    ]
    repeated = _repeated(keys)
    twice = [item.relpath for key, item in zip(keys, items, strict=True) if key in repeated]
    if twice:
        raise ValueError(f"duplicate input {twice[0]!r} (same path, label and target)")
    return keys


def _repeated(keys: list[str]) -> set[str]:
    return {key for key, count in Counter(keys).items() if count > 1}


def _identity(item: ShardItem, with_labels: bool) -> str:
    """What tells ``item`` apart: its path, with its label and target where the path is given again."""
    return f"{item.relpath}\0{item.label}\0{item.target}" if with_labels else item.relpath
