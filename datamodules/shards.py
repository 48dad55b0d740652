"""Write images as WebDataset shards (tar files) read by ``WebDatasetDataModule`` (``ldce shards``).

The inputs are those of :func:`ldce.datamodules.folders.collect_items`: a folder, an ImageFolder tree
(matched to ``--class_names`` by name), a CSV or JSON list. Each sample holds ``__key__`` (the relative
path without extension, every character outside ``[A-Za-z0-9_-]`` replaced by ``_``; a colliding key
gets a hash of the path appended), the image bytes unchanged under their lower-cased extension, ``cls``
(label) and ``target.cls`` where known — unlabelled inputs have neither, and target policies that need
no label (``SecondMostLikely``, ``FixedTarget``) explain them — and ``json``
``{"index", "path", "label"?, "target"?, "class_name"?}`` (``index``: the item's own, else its position);
an image's region mask ``<name>.mask.<image extension>`` beside it (any case) goes in as ``mask.png``
(``model.region``).
A shard appears under its name only once complete, so an interrupted run leaves no truncated shard
behind; shards of an earlier, longer run that this one did not overwrite are named in a warning.

CLI: ``ldce shards --input X --output "out/shard-%06d.tar" --maxcount 1000 [--class_names names.txt] [--root DIR]``.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import webdataset
from jsonargparse.typing import PositiveInt

from ldce.checks import ArgumentParser, check
from ldce.classifiers.names import read_class_names
from ldce.datamodules.folders import ShardItem, collect_items, is_image_path
from ldce.datamodules.keys import unique_keys
from ldce.datamodules.masks import IMAGE_EXTENSIONS, MASK

logger = logging.getLogger(__name__)

FIELD = re.compile(r"%[-#0 +]*[0-9]*(?:\.[0-9]+)?(.)")
"""A printf-style field of a shard pattern; group 1 is its conversion (``%`` for a literal ``%%``)."""


def _to_sample(item: ShardItem, index: int, key: str) -> dict:
    """The WebDataset sample of ``item``: image bytes unchanged, ``cls``/``target.cls`` and ``json`` meta."""
    if not is_image_path(item.path):
        raise ValueError(f"{item.path}: not one of the image extensions {', '.join(IMAGE_EXTENSIONS)}")
    meta: dict = {"index": index if item.index is None else item.index, "path": item.relpath}
    sample: dict = {"__key__": key, item.path.suffix.lower().lstrip("."): item.path.read_bytes(), "json": meta}
    if item.label is not None:
        sample["cls"] = meta["label"] = item.label
    if item.target is not None:
        sample["target.cls"] = meta["target"] = item.target
    if item.class_name is not None:
        meta["class_name"] = item.class_name
    if item.mask is not None:
        sample[MASK] = item.mask.read_bytes()
    return sample


def _pattern_parts(pattern: str) -> tuple[str, str]:
    """The text before and after the one integer field (``%d``, ``%06d`` …) of a shard pattern, ``%%`` as ``%``.

    Raises ``ValueError`` naming the pattern when it has no integer field, more than one field, or another kind.
    """
    fields = [field for field in FIELD.finditer(pattern) if field.group(1) != "%"]
    if len(fields) != 1 or fields[0].group(1) not in "diu":
        raise ValueError(
            f"shard pattern {pattern!r} needs exactly one integer field (%d, %06d …), e.g. 'out/shard-%06d.tar'"
        )
    field = fields[0]
    return pattern[: field.start()].replace("%%", "%"), pattern[field.end() :].replace("%%", "%")


def _write_shard(samples: Iterable[dict], path: Path) -> None:
    """Write ``samples`` as the tar ``path`` (its folder created if missing), atomically: into the hidden
    ``.<name>.partial`` beside it, renamed to ``path`` once complete. An error or interrupt on the way
    removes the partial file and propagates; a killed process leaves at most the partial file."""
    partial = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with webdataset.TarWriter(str(partial)) as tar:
            for sample in samples:
                tar.write(sample)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def _stale_shards(pattern: str, written: int) -> list[str]:
    """Existing files named by ``pattern`` with an index ≥ ``written`` (left by an earlier, longer run),
    in index order."""
    before, after = _pattern_parts(pattern)
    found = []
    for path in glob.glob(glob.escape(before) + "*" + glob.escape(after)):
        digits = path[len(before) : len(path) - len(after)]
        if re.fullmatch("[0-9]+", digits) and int(digits) >= written and pattern % int(digits) == path:
            found.append((int(digits), path))
    return [path for _, path in sorted(found)]


def write_shards(items: Sequence[ShardItem], pattern: str, maxcount: int) -> list[str]:
    """Write ``items`` (sample index = position) into shards ``pattern % 0, pattern % 1, …``.

    Each shard holds at most ``maxcount`` samples and appears under its name only once complete (see
    :func:`_write_shard`); folders are created as needed. Shards of an earlier run beyond the last one
    written are named in a warning, never deleted. Returns the shard file names, in order.

    Raises ``ValueError`` (before writing anything) for a ``maxcount`` < 1, a pattern without exactly one
    integer field, or no items.
    """
    check("maxcount", maxcount, PositiveInt)
    _pattern_parts(pattern)
    if not items:
        raise ValueError("no images to write")
    keys, shards = unique_keys(items), []
    for shard, start in enumerate(range(0, len(items), maxcount)):
        name, chunk = pattern % shard, range(start, min(start + maxcount, len(items)))
        _write_shard((_to_sample(items[index], index, keys[index]) for index in chunk), Path(name))
        shards.append(name)
        logger.info("wrote shard %s", name)
    logger.info("wrote %d samples to %d shards (%s)", len(items), len(shards), pattern)
    stale = _stale_shards(pattern, len(shards))
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        logger.warning(
            "%d shards of an earlier run remain beyond those written, left as they are: %s", len(stale), shown
        )
    return shards


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m ldce.datamodules.shards`` / ``ldce shards``."""
    parser = ArgumentParser(prog="ldce shards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="image folder, ImageFolder tree, glob, .csv or .json list")
    parser.add_argument("--output", required=True, help='shard pattern, e.g. "out/shard-%%06d.tar"')
    parser.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--class_names", type=Path, help="class names file: class folders are matched to it by name")
    parser.add_argument("--root", type=Path, help="base folder of relative paths in a CSV/JSON list")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    class_names = read_class_names(args.class_names) if args.class_names is not None else None
    _pattern_parts(args.output)  # a bad pattern is refused before the inputs are listed
    write_shards(collect_items(args.input, class_names, args.root), args.output, args.maxcount)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
