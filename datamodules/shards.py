"""Write image datasets as WebDataset shards (tar files) read by ``WebDatasetDataModule``.

Inputs (``collect_items``):

* a flat image folder: images directly inside it, no labels;
* an ImageFolder tree: one subfolder per class, label = index of the folder name in sorted order,
  class name = folder name (images are searched recursively inside each class folder);
* a CSV file (``.csv``, rows ``path,label[,target]``, with or without a header row) or a JSON list
  (``.json``, entries ``[path, label, target?]`` or ``{"path", "label", "target"?}``); relative paths
  are resolved against ``root`` (default: the list file's folder).

Each sample holds ``__key__`` (the relative path without extension, every character outside
``[A-Za-z0-9_-]`` replaced by ``_``; a colliding key gets a hash of the path appended), the image bytes
unchanged under their lower-cased extension, ``cls`` (label) and ``target.cls`` when known, and ``json``
``{"index", "path", "label"?, "target"?, "class_name"?}`` (``index``: the item's own, else its position).

CLI: ``python -m ldce.datamodules.shards --input X --output "out/shard-%06d.tar" --maxcount 1000
[--class_names names.txt] [--root DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import webdataset
from jsonargparse.typing import PositiveInt

from ldce.checks import check, class_index
from ldce.classifiers.names import read_class_names

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp")
"""Image entries a sample may carry; the reader takes the first present, in this order."""


@dataclass(frozen=True)
class ShardItem:
    """One image to write: its file, its path relative to the input root, and optional labels.

    ``index``: the image's index in its data set when that is not its position in the shards (e.g.
    ImageNet's folder order, which published target mappings index, written in block order).
    """

    path: Path
    relpath: str
    label: int | None = None
    target: int | None = None
    class_name: str | None = None
    index: int | None = None


def is_image_path(path: Path) -> bool:
    """Whether the extension of ``path`` (case-insensitive) is one of ``IMAGE_EXTENSIONS``."""
    return path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def sample_key(relpath: str) -> str:
    """A filesystem- and WebDataset-safe key: ``relpath`` without extension, ``[^A-Za-z0-9_-]`` → ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(PurePosixPath(relpath).with_suffix("")))


def _unique_key(relpath: str, taken: set[str]) -> str:
    """``sample_key(relpath)``, with a hash of ``relpath`` appended if another path already took it."""
    key = sample_key(relpath)
    if key in taken:
        key = f"{key}_{hashlib.sha1(relpath.encode()).hexdigest()[:10]}"
    if key in taken:
        raise ValueError(f"duplicate path {relpath!r} in the input")
    taken.add(key)
    return key


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


def write_shards(items: Iterable[ShardItem], pattern: str, maxcount: int) -> list[str]:
    """Write ``items`` (sample index = position) into shards ``pattern % 0, pattern % 1, …``.

    Each shard holds at most ``maxcount`` samples. Returns the shard file names, in order.
    """
    check("maxcount", maxcount, PositiveInt)
    try:
        first_shard = pattern % 0
    except TypeError as error:
        raise ValueError(f"pattern needs one integer field such as %06d, got {pattern!r}") from error
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no images to write")
    Path(first_shard).parent.mkdir(parents=True, exist_ok=True)
    shards: list[str] = []
    taken: set[str] = set()

    def shard_closed(fname: str) -> None:
        shards.append(fname)
        logger.info("wrote shard %s", fname)

    with webdataset.ShardWriter(pattern, maxcount=maxcount, verbose=0, post=shard_closed) as writer:
        for index, item in enumerate(itertools.chain([first], iterator)):
            writer.write(_to_sample(item, index, _unique_key(item.relpath, taken)))
    logger.info("wrote %d samples to %d shards (%s)", len(taken), len(shards), pattern)
    return shards


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    """Image files (by extension, case-insensitive) in ``folder``, sorted by path."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.is_file() and is_image_path(p))


def _items_from_folder(root: Path, class_names: Sequence[str] | None) -> list[ShardItem]:
    """An ImageFolder tree (labels from sorted class folders) or, without subfolders, a flat folder."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        return [ShardItem(path, path.name) for path in _image_files(root, recursive=False)]
    names = list(class_names) if class_names is not None else [d.name for d in class_dirs]
    if len(names) < len(class_dirs):
        raise ValueError(f"class_names has {len(names)} names for {len(class_dirs)} class folders in {root}")
    return [
        ShardItem(path, path.relative_to(root).as_posix(), label, None, names[label])
        for label, class_dir in enumerate(class_dirs)
        for path in _image_files(class_dir, recursive=True)
    ]


def _optional_int(value: object, where: str, field: str) -> int | None:
    """:func:`ldce.checks.class_index` with the row named in its error."""
    try:
        return class_index(value, field)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _row_to_item(row: Sequence, where: str, base: Path, class_names: Sequence[str] | None) -> ShardItem:
    """A ``(path, label[, target])`` row as a ``ShardItem``; the file must exist and be an image."""
    if not 2 <= len(row) <= 3:
        raise ValueError(f"{where}: expected path,label[,target], got {list(row)!r}")
    relpath = PurePosixPath(str(row[0]).strip()).as_posix()
    path = base / relpath
    if not is_image_path(path) or not path.is_file():
        raise ValueError(f"{where}: {path} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
    label = _optional_int(row[1], where, "label")
    if label is None:
        raise ValueError(f"{where}: missing label")
    target = _optional_int(row[2], where, "target") if len(row) == 3 else None
    if class_names is not None and label >= len(class_names):
        raise ValueError(f"{where}: label {label} has no entry in class_names ({len(class_names)} names)")
    return ShardItem(path, relpath, label, target, class_names[label] if class_names is not None else None)


def _read_rows(list_file: Path) -> list[tuple[str, Sequence]]:
    """``(where, row)`` pairs of a CSV (header row skipped) or JSON list file."""
    if list_file.suffix.lower() == ".json":
        entries = json.loads(list_file.read_text())
        if not isinstance(entries, list):
            raise ValueError(f"{list_file}: expected a JSON list")
        return [
            (f"{list_file}[{n}]", [e.get("path"), e.get("label"), e.get("target")] if isinstance(e, dict) else e)
            for n, e in enumerate(entries)
        ]
    with list_file.open(newline="") as stream:
        rows = [(f"{list_file}:{n}", row) for n, row in enumerate(csv.reader(stream), start=1) if row]
    if rows and len(rows[0][1]) > 1 and not re.fullmatch(r"\s*[+-]?\d+\s*", rows[0][1][1]):
        logger.info("%s: skipping header row %s", list_file, rows[0][1])
        rows = rows[1:]
    return rows


def collect_items(source: Path, class_names: Sequence[str] | None = None, root: Path | None = None) -> list[ShardItem]:
    """The images of a folder (flat or ImageFolder tree) or a CSV/JSON list file, in a stable order."""
    if source.is_dir():
        return _items_from_folder(source, class_names)
    if source.suffix.lower() in (".csv", ".json") and source.is_file():
        base = root if root is not None else source.parent
        return [_row_to_item(row, where, base, class_names) for where, row in _read_rows(source)]
    raise ValueError(f"input must be a folder, a .csv or a .json file, got {source}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m ldce.datamodules.shards`` / ``ldce shards``."""
    parser = argparse.ArgumentParser(prog="ldce shards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="image folder, ImageFolder tree, .csv or .json")
    parser.add_argument("--output", required=True, help='shard pattern, e.g. "out/shard-%%06d.tar"')
    parser.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--class_names", type=Path, help="text file with one class name per line")
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
