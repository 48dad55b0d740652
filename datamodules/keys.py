"""Sample keys: a WebDataset-safe key per input, made unique where two paths would give the same one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from ldce.datamodules.folders import ShardItem


def sample_key(relpath: str) -> str:
    """A WebDataset-safe key: ``relpath`` without extension, ``[^A-Za-z0-9_-]`` → ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(PurePosixPath(relpath).with_suffix("")))


def unique_keys(items: Sequence[ShardItem]) -> list[str]:
    """:func:`sample_key` of each item, a hash of its path appended where two would collide."""
    keys, taken = [], set()
    for item in items:
        key = sample_key(item.relpath)
        if key in taken:
            key = f"{key}_{hashlib.sha1(item.relpath.encode()).hexdigest()[:10]}"
        if key in taken:
            raise ValueError(f"duplicate path {item.relpath!r} in the input")
        taken.add(key)
        keys.append(key)
    return keys
