"""Write images as WebDataset shards (tar files) read by ``WebDatasetDataModule`` (``ldce shards``).

The inputs are those of :func:`ldce.datamodules.folders.collect_items`: a folder, an ImageFolder tree
(matched to ``--class_names`` by name), a CSV or JSON list. Each sample holds ``__key__`` (the relative
path without extension, every character outside ``[A-Za-z0-9_-]`` replaced by ``_``; a colliding key
gets a hash of the path appended), the image bytes unchanged under their lower-cased extension, ``cls``
(label) and ``target.cls`` where known — unlabelled inputs have neither, and target policies that need
no label (``SecondMostLikely``, ``FixedTarget``) explain them — and ``json``
``{"index", "path", "label"?, "target"?, "class_name"?}`` (``index``: the item's own, else its position).

CLI: ``ldce shards --input X --output "out/shard-%06d.tar" --maxcount 1000 [--class_names names.txt] [--root DIR]``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import webdataset
from jsonargparse.typing import PositiveInt

from ldce.checks import ArgumentParser, check
from ldce.classifiers.names import read_class_names
from ldce.datamodules.folders import IMAGE_EXTENSIONS, ShardItem, collect_items, is_image_path, unique_keys

logger = logging.getLogger(__name__)


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
    return sample


def write_shards(items: Sequence[ShardItem], pattern: str, maxcount: int) -> list[str]:
    """Write ``items`` (sample index = position) into shards ``pattern % 0, pattern % 1, …``.

    Each shard holds at most ``maxcount`` samples. Returns the shard file names, in order.
    """
    check("maxcount", maxcount, PositiveInt)
    try:
        first_shard = pattern % 0
    except TypeError as error:
        raise ValueError(f"pattern needs one integer field such as %06d, got {pattern!r}") from error
    if not items:
        raise ValueError("no images to write")
    Path(first_shard).parent.mkdir(parents=True, exist_ok=True)
    shards: list[str] = []

    def shard_closed(fname: str) -> None:
        shards.append(fname)
        logger.info("wrote shard %s", fname)

    with webdataset.ShardWriter(pattern, maxcount=maxcount, verbose=0, post=shard_closed) as writer:
        for index, (item, key) in enumerate(zip(items, unique_keys(items), strict=True)):
            writer.write(_to_sample(item, index, key))
    logger.info("wrote %d samples to %d shards (%s)", len(items), len(shards), pattern)
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
    write_shards(collect_items(args.input, class_names, args.root), args.output, args.maxcount)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
