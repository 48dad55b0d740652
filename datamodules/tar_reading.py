"""Reading shards so that one damaged, missing or odd shard costs that shard, never the run or its data.

- :func:`check_local_shards` lists every local shard path that does not exist, in one error, before
  any model loads.
- :func:`duplicate_renames` reads the sample keys of the local shards (tar headers only): a key's first
  occurrence (in shard order) keeps it, every later one — in another shard, or again in one — gets a
  distinct name ``<key>@<shard name>`` (``#n`` for the n-th occurrence within one shard): all inputs
  are explained, nothing is overwritten, and adding a shard never renames the inputs already done.
  With ``duplicate_keys: fail`` the run stops instead, naming the shards.
  Keys of remote shards (``pipe:``, URLs) cannot be listed before the run: they must be unique.
- :class:`ShardReader` reads shards one after the other; a shard that cannot be opened or breaks
  part-way yields its readable samples and then one failure marker naming the shard and where it broke.
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

from webdataset import tariterators

from ldce.datamodules.folders import is_image_path

DuplicateKeys = Literal["rename", "fail"]
FAILURE, ORIGINAL_KEY = "__failure__", "__original_key__"
META_MEMBER = re.compile(r"__[^/]*__($|/)")
"""Members WebDataset skips (its own metadata)."""


def is_local(url: str) -> bool:
    """Whether a shard URL names a local file (not ``pipe:``, not ``scheme://``)."""
    return "://" not in url and not url.startswith("pipe:")


def check_local_shards(urls: list[str]) -> None:
    """Raise one ``FileNotFoundError`` listing every local shard that is not a file, or a ``ValueError``
    naming a shard listed twice or a local file that is an image rather than a tar archive."""
    repeated = [url for url, count in Counter(urls).items() if count > 1]
    if repeated:
        raise ValueError(f"shard {repeated[0]} is listed {urls.count(repeated[0])} times in urls; list each once")
    local = [url for url in urls if is_local(url)]
    missing = [url for url in local if not Path(url).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{len(missing)} of {len(urls)} shards not found: {shown}")
    images = [url for url in local if is_image_path(Path(url))]
    if images:
        raise ValueError(
            f"{images[0]} is an image, not a WebDataset shard: explain images with `ldce explain {images[0]}`"
        )


def shard_name(url: str) -> str:
    """The shard's file name without ``.tar`` (or ``.tar.gz``, …)."""
    return PurePosixPath(url.split("::")[-1]).name.split(".tar")[0]


def sample_keys(path: str) -> list[str]:
    """The keys of a local shard's samples in order, as WebDataset groups members (headers only).

    A shard that breaks part-way gives the keys before the break (its reader reports the break).
    """
    keys: list[str] = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                prefix, _ = tariterators.base_plus_ext(member.name)
                if member.isreg() and prefix is not None and not META_MEMBER.match(member.name):
                    if not keys or keys[-1] != prefix:
                        keys.append(prefix)
    except (tarfile.TarError, OSError, EOFError):
        pass
    return keys


def duplicate_renames(urls: list[str], policy: DuplicateKeys) -> dict[tuple[str, str, int], str]:
    """``(shard url, key, occurrence in that shard) → new key`` for every occurrence after the first of a
    key of the local shards; ``ValueError`` naming them under ``policy="fail"``."""
    keys = {url: sample_keys(url) for url in urls if is_local(url)}
    counts = Counter(key for shard in keys.values() for key in shard)
    repeated = {key for key, count in counts.items() if count > 1}
    if repeated and policy == "fail":
        where = {key: sorted({shard_name(u) for u, shard in keys.items() if key in shard}) for key in sorted(repeated)}
        shown = "; ".join(f"{key!r} in {', '.join(shards)}" for key, shards in list(where.items())[:5])
        raise ValueError(f"{len(repeated)} sample keys occur more than once ({shown}); duplicate_keys: fail")
    renames, taken, first = {}, set(counts), set()
    for url, shard in keys.items():
        seen: Counter[str] = Counter()
        for key in shard:
            if key in repeated and key in first:
                renamed = f"{key}@{shard_name(url)}" + (f"#{seen[key] + 1}" if seen[key] else "")
                while renamed in taken:
                    renamed += "+"
                renames[url, key, seen[key]] = renamed
                taken.add(renamed)
            first.add(key)
            seen[key] += 1
    return renames


class ShardReader:
    """Pipeline stage: shard dicts ``{"url": …}`` → WebDataset samples (``__key__``, ``__url__``, entries).

    Keys listed in ``renames`` are renamed (the original kept under :data:`ORIGINAL_KEY`). A shard that
    cannot be opened or read to its end yields the samples before the break and then
    ``{"__key__": <shard url>, "__url__": <shard url>, FAILURE: <where and why>}``.
    """

    def __init__(self, renames: dict[tuple[str, str, int], str]) -> None:
        self.renames = renames

    def __call__(self, shards: Iterable[dict]) -> Iterator[dict]:
        for shard in shards:
            yield from self._read(shard["url"])

    def _read(self, url: str) -> Iterator[dict]:
        seen: Counter[str] = Counter()
        last = None
        try:
            files = tariterators.tar_file_expander(tariterators.url_opener([{"url": url}]))
            for sample in tariterators.group_by_keys(files):
                key = last = sample["__key__"]
                renamed = self.renames.get((url, key, seen[key]))
                seen[key] += 1
                if renamed is not None:
                    sample.update({"__key__": renamed, ORIGINAL_KEY: key})
                yield sample
        except Exception as error:  # a damaged or missing shard costs that shard's rest, not the run
            where = f"after {sum(seen.values())} samples" + (f" (the last {last!r})" if last else "")
            yield {"__key__": url, "__url__": url, FAILURE: f"shard {url} broke {where}: {_first_line(error)}"}


def _first_line(error: Exception) -> str:
    """``Type: message`` without the stream objects WebDataset appends to an error's arguments."""
    if isinstance(error, OSError) and error.strerror:
        message = error.strerror
    else:
        message = str(error.args[0]) if error.args else str(error)
    return f"{type(error).__name__}: {message.split(' @ <')[0]}"
