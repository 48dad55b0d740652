"""Image inputs as people have them: files, folders, ImageFolder trees, globs and CSV/JSON lists.

:func:`collect_items` turns each source into :class:`ShardItem` s (file, relative path, optional labels):

* an image file; a glob pattern (``photos/*.jpg``) — unlabelled;
* a flat folder (images directly inside it, searched recursively when it has no class folders) — unlabelled;
* an ImageFolder tree: one subfolder per class. With ``class_names`` each folder is matched to a name *by name*
  (case, spaces, ``_``, ``-`` and ``/`` ignored: ``Ankle_boot/`` is "Ankle boot", ``T-shirt_top/`` is
  "T-shirt/top") and a folder matching no name is an error naming it; without, the sorted folder names are the
  classes (torchvision's ImageFolder) — or, when every folder is a number, those numbers. Images directly in
  the root of a tree are taken unlabelled, with a warning; ldce results folders (holding ``manifest.json``)
  and, with ``class_names``, image-less folders that match no name are not classes; a folder whose
  subfolders hold no image is a flat folder;
* a CSV (``path[,label[,target]]``; or a header row naming the columns ``path``, ``label`` and ``target`` in
  any order, other columns ignored) or a JSON list (``path``, ``[path, label?, target?]`` or ``{"path",
  "label"?, "target"?}``); labels and targets are class indices or, with ``class_names``, names; relative
  paths are resolved against ``root`` (default: the list's folder).

What operating systems and archivers leave behind (hidden files and folders, ``__MACOSX``, ``Thumbs.db``,
``desktop.ini``, ``@eaDir``, ``$RECYCLE.BIN``, ``System Volume Information``) is never taken for a class or
an image; other files that are not images are skipped with one warning that counts them.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from ldce.checks import class_index
from ldce.classifiers.names import normalised
from ldce.datamodules.masks import IMAGE_EXTENSIONS, is_mask_path, masks_beside

log = logging.getLogger(__name__)

LEFTOVERS = frozenset({"__macosx", "thumbs.db", "desktop.ini", "@eadir", "$recycle.bin", "system volume information"})
COLUMNS = {"path": ("path", "file", "filename", "image"), "label": ("label", "class", "source"), "target": ("target",)}
"""A CSV header's names for each column (case ignored)."""


@dataclass(frozen=True)
class ShardItem:
    """One image: its file, its path relative to its source, and optional labels.

    ``index``: the image's index in its data set when that is not its position in the shards (e.g.
    ImageNet's folder order, which published target mappings index, written in block order); ``mask``:
    the region mask file beside it (:mod:`ldce.datamodules.masks`).
    """

    path: Path
    relpath: str
    label: int | None = None
    target: int | None = None
    class_name: str | None = None
    index: int | None = None
    mask: Path | None = None


def is_image_path(path: Path) -> bool:
    """Whether the extension of ``path`` (case-insensitive) is one of ``IMAGE_EXTENSIONS`` and it is not
    another image's region mask (:func:`ldce.datamodules.masks.is_mask_path`)."""
    return path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and not is_mask_path(path)


def is_leftover(path: Path) -> bool:
    """Hidden entries and what operating systems and archivers leave behind."""
    return path.name.startswith(".") or path.name.lower() in LEFTOVERS


def _files(folder: Path, recursive: bool) -> list[Path]:
    """The image files in ``folder`` (sorted), leftovers and ldce results folders excluded; warns once
    about other files."""
    found, others = [], Counter()
    results = {manifest.parent for manifest in folder.rglob("manifest.json")} if recursive else set()
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        relative = path.relative_to(folder).parts
        if any(is_leftover(Path(part)) for part in relative) or not path.is_file() or results & set(path.parents):
            continue
        if is_image_path(path):
            found.append(path)
        elif is_mask_path(path):
            continue  # a region mask, read with its image
        else:
            others[path.suffix.lower() or "(no extension)"] += 1
    if others:
        skipped = _count(sum(others.values()), "file")
        log.warning("%s: skipped %s (not images: %s)", folder, skipped, dict(others))
    return found


def _count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _holds_images(folder: Path) -> bool:
    """Whether an image file lies anywhere under ``folder``."""
    return any(is_image_path(path) and path.is_file() for path in folder.rglob("*"))


def _is_results(folder: Path) -> bool:
    """An ldce results folder (it holds ``manifest.json``), never a class."""
    return (folder / "manifest.json").is_file()


def _folder_labels(folders: list[Path], class_names: Sequence[str] | None) -> dict[Path, int]:
    """Class folder → label: matched to ``class_names`` by name, else by sorted position."""
    if all(folder.name.isdigit() for folder in folders):
        labels = {folder: int(folder.name) for folder in folders}
        if class_names is not None and max(labels.values()) >= len(class_names):
            raise ValueError(f"class folder {max(labels.values())} is outside the {len(class_names)} class names")
        return labels
    if class_names is None:
        labels = {folder: label for label, folder in enumerate(folders)}
        shown = ", ".join(f"{label} = {folder.name}" for folder, label in list(labels.items())[:20])
        log.warning(
            "no class_names: the classes are the folders in sorted order (%s); give class_names to match "
            "folders by name",
            shown,
        )
        return labels
    by_name = {normalised(name): label for label, name in enumerate(class_names)}
    folders = [folder for folder in folders if normalised(folder.name) in by_name or _holds_images(folder)]
    unknown = [folder.name for folder in folders if normalised(folder.name) not in by_name]
    if unknown:
        known = ", ".join(list(class_names)[:10]) + ("…" if len(class_names) > 10 else "")
        root = folders[0].parent
        raise ValueError(
            f"class folders {unknown} match none of the {len(class_names)} class names ({known}); to take "
            f"the images without labels, give a glob: '{root}/**/*.*'"
        )
    return {folder: by_name[normalised(folder.name)] for folder in folders}


def _items_from_folder(root: Path, class_names: Sequence[str] | None) -> list[ShardItem]:
    """An ImageFolder tree or a flat folder (see the module docstring)."""
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not is_leftover(d) and not _is_results(d))
    if not any(_holds_images(folder) for folder in folders):
        return [ShardItem(path, path.relative_to(root).as_posix()) for path in _files(root, recursive=True)]
    loose = [ShardItem(path, path.name) for path in _files(root, recursive=False)]
    if loose:
        log.warning("%s: %s outside the class folders are taken without a label", root, _count(len(loose), "image"))
    labels, items = _folder_labels(folders, class_names), []
    for folder in labels:
        images = _files(folder, recursive=True)
        if not images:
            log.warning("%s: class folder %r holds no images", root, folder.name)
        name = class_names[labels[folder]] if class_names is not None else folder.name
        items += [ShardItem(path, path.relative_to(root).as_posix(), labels[folder], None, name) for path in images]
    return loose + items


def _class(value: object, where: str, field: str, class_names: Sequence[str] | None) -> int | None:
    """A label or target cell: a class index, or a class name when ``class_names`` are given."""
    if class_names is not None and isinstance(value, str) and normalised(value):
        by_name = {normalised(name): label for label, name in enumerate(class_names)}
        if normalised(value) in by_name and not value.strip().isdigit():
            return by_name[normalised(value)]
    try:
        label = class_index(value, field)
    except ValueError as error:
        hint = "; labels given as names need class_names" if class_names is None else ""
        raise ValueError(f"{where}: {error}{hint}") from None
    if label is not None and class_names is not None and label >= len(class_names):
        raise ValueError(f"{where}: {field} {label} has no entry in class_names ({len(class_names)} names)")
    return label


def _row_to_item(row: Sequence, where: str, base: Path, class_names: Sequence[str] | None) -> ShardItem:
    """A ``(path[, label[, target]])`` row as a ``ShardItem``; the file must exist and be an image."""
    if not 1 <= len(row) <= 3:
        raise ValueError(f"{where}: expected path[,label[,target]], got {list(row)!r}")
    relpath = PurePosixPath(str(row[0]).strip()).as_posix()
    path = base / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file {path}")
    if not is_image_path(path):
        raise ValueError(f"{where}: {path} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
    label = _class(row[1], where, "label", class_names) if len(row) > 1 else None
    target = _class(row[2], where, "target", class_names) if len(row) > 2 else None
    name = class_names[label] if class_names is not None and label is not None else None
    return ShardItem(path, relpath, label, target, name)


def _json_row(entry: object, where: str) -> Sequence:
    """A JSON list entry (a path, a ``[path, label?, target?]`` list or a ``{"path", …}`` object) as a row."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        if "path" not in entry:
            raise ValueError(f'{where}: an entry needs a "path", got keys {sorted(entry)}')
        row = [entry["path"], entry.get("label"), entry.get("target")]
        return row[: max(i + 1 for i, cell in enumerate(row) if cell is not None)]
    if isinstance(entry, list):
        return entry
    raise ValueError(f"{where}: expected a path, a [path, label, target] list or an object, got {entry!r}")


def _header(row: Sequence[str], where: str) -> list[int] | None:
    """The positions of the path, label and target columns that a header ``row`` names (``None``: not a
    header that names columns); raises ``ValueError`` for a naming header without a path column."""
    names = [cell.strip().lower() for cell in row]
    found = {col: next((i for i, n in enumerate(names) if n in aliases), None) for col, aliases in COLUMNS.items()}
    if all(position is None for position in found.values()):
        return None
    if found["path"] is None:
        raise ValueError(f"{where}: the header names no path column (one of {', '.join(COLUMNS['path'])})")
    positions = [found["path"], found["label"], found["target"]]
    return positions[: max(i + 1 for i, p in enumerate(positions) if p is not None)]


def _csv_rows(list_file: Path, base: Path) -> list[tuple[str, Sequence]]:
    """``(where, row)`` pairs of a CSV; a first row that names no image file is a header, used to pick the
    path, label and target columns when it names them."""
    with list_file.open(newline="", encoding="utf-8-sig") as stream:
        rows = [(f"{list_file}:{n}", row) for n, row in enumerate(csv.reader(stream), start=1) if any(row)]
    first = Path(rows[0][1][0].strip()) if rows else None
    if first is None or is_image_path(first) or (base / first).is_file():
        return rows
    columns = _header(rows[0][1], rows[0][0])
    log.info("%s: header row %s", list_file, rows[0][1])
    if columns is None:
        return rows[1:]
    return [(where, [row[c] if c is not None and c < len(row) else "" for c in columns]) for where, row in rows[1:]]


def _read_rows(list_file: Path, base: Path) -> list[tuple[str, Sequence]]:
    """``(where, row)`` pairs of a CSV or JSON list (see the module docstring)."""
    if list_file.suffix.lower() == ".json":
        entries = json.loads(list_file.read_text())
        if not isinstance(entries, list):
            raise ValueError(f"{list_file}: expected a JSON list")
        rows = [(f"{list_file}[{n}]", _json_row(e, f"{list_file}[{n}]")) for n, e in enumerate(entries)]
    else:
        rows = _csv_rows(list_file, base)
    if not rows:
        raise ValueError(f"{list_file}: no rows (expected comma-separated path[,label[,target]])")
    return rows


def _list_items(source: Path, class_names: Sequence[str] | None, root: Path | None) -> list[ShardItem]:
    base = root if root is not None else source.parent
    return [_row_to_item(row, where, base, class_names) for where, row in _read_rows(source, base)]


def collect_items(
    source: Path | str, class_names: Sequence[str] | None = None, root: Path | None = None
) -> list[ShardItem]:
    """The images of one source (see the module docstring), in a stable order, each with its region mask."""
    items = _items(source, class_names, root)
    masks = masks_beside(item.path for item in items)
    return [replace(item, mask=masks.get(item.path)) for item in items]


def _items(source: Path | str, class_names: Sequence[str] | None, root: Path | None) -> list[ShardItem]:
    text = str(source)
    path = Path(source)
    if path.is_dir():
        return _items_from_folder(path, class_names)
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        return _list_items(path, class_names, root)
    if path.is_file() and is_image_path(path):
        return [ShardItem(path, path.name)]
    if glob.has_magic(text):
        matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        images = [p for p in matches if p.is_file() and is_image_path(p) and not is_leftover(p)]
        if images:
            common = Path(os.path.commonpath([p.parent for p in images]))
            return [ShardItem(p, p.relative_to(common).as_posix()) for p in images]
        raise ValueError(f"{text}: the pattern matches no image file")
    if path.exists():
        raise ValueError(f"{text}: not an image ({', '.join(IMAGE_EXTENSIONS)}), a folder, a .csv or a .json list")
    raise FileNotFoundError(f"{text}: no such file or folder")
