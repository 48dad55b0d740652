"""Reading the paper's original torch checkpoints safely and offline.

Released checkpoints are torch pickles. CompVis' cin256-v2 ``model.ckpt`` and miniSD's ``.ckpt`` are
PyTorch Lightning checkpoints that may hold, next to ``state_dict``, training bookkeeping: callback
states keyed by Lightning classes, optimizer states, hyperparameters, numpy scalars. Plain
``torch.load(weights_only=True)`` rejects such objects, and ``weights_only=False`` would run whatever
code the pickle names. ldce does neither: :func:`load_torch_file` unpickles with torch's weights-only
unpickler and lets every global that unpickler does not allow resolve to :class:`Placeholder`, an
inert class whose construction and state setting do nothing. Tensors, containers and numbers load as
usual; the bookkeeping becomes placeholders, which nothing uses. A tensor that needed such a global
(a custom tensor subclass) would become a placeholder too, and is then rejected as "not a tensor".

:func:`tensor_checkpoint` gives loaders that accept only plain tensor files (``.safetensors`` or
weights-only torch files) a path they can read: the file itself when it has no such objects,
otherwise a ``.safetensors`` copy of its ``state_dict``, kept in ``cache_dir`` (reused while the
source file is unchanged) or in a temporary folder for the duration of the load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

log = logging.getLogger(__name__)

COPY_SUFFIX = ".tensors.safetensors"
COPY_SOURCE_SUFFIX = ".tensors.json"


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read as expected; the message names the file."""


class Placeholder:
    """Stands in for any object whose class the weights-only unpickler does not allow; inert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Accept and drop whatever the pickle passes."""

    def __setstate__(self, state: object) -> None:
        """Drop the pickled state."""


def _existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError`` naming ``what`` when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    return path


def disallowed_globals(path: Path) -> list[str]:
    """The pickle globals of a zip-format torch file that the weights-only unpickler rejects.

    Read statically from the pickle, without unpickling; ``[]`` for the legacy (pre-zip) format,
    which :func:`load_torch_file` then reads with plain ``weights_only``.
    """
    if not zipfile.is_zipfile(path):
        return []
    return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))))


def load_torch_file(path: str | Path, what: str) -> Any:
    """Unpickle a torch file on CPU with rejected globals read as :class:`Placeholder` (no code runs).

    Raises ``FileNotFoundError`` or :class:`CheckpointFileError` naming the file and ``what`` was
    expected when it is missing, truncated or not a torch file.
    """
    path = _existing_file(path, what)
    try:
        names = disallowed_globals(path)
        with torch.serialization.safe_globals([(Placeholder, name) for name in names]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise _unreadable(path, what, error) from error
    if names:
        log.info("%s: read %s as inert placeholders (training bookkeeping, not used)", path, names)
    return content


def state_dict_of(content: Any, path: Path, what: str, key: str | None = "state_dict") -> dict[str, Tensor]:
    """The tensor dict in ``content[key]`` (or ``content`` itself when ``key`` is absent or ``None``)."""
    if key is not None and isinstance(content, dict) and key in content:
        content = content[key]
    if not isinstance(content, dict) or not content:
        raise CheckpointFileError(f"{path}: expected {what}: a non-empty dict of tensors"
                                  f"{f' (optionally under {key!r})' if key else ''}, found {type(content).__name__}")
    others = sorted(f"{k}: {type(v).__name__}" for k, v in content.items() if not isinstance(v, Tensor))
    if others:
        raise CheckpointFileError(f"{path}: expected {what}, but {len(others)} entries are not tensors: {others[:5]}")
    return content


def _source_of(path: Path) -> dict[str, Any]:
    """Identity of a source file for the cached copy: resolved path, size, modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_copy(path: Path, what: str, copy: Path) -> None:
    """Write ``state_dict`` of ``path`` to ``copy`` (safetensors, contiguous, shared storage resolved)."""
    state = state_dict_of(load_torch_file(path, what), path, what)
    with _replacing(copy) as partial:
        save_file(_unshared(state), str(partial))
    log.info("wrote a tensors-only copy of %s to %s", path, copy)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary sibling of ``target`` that replaces it (atomically) when the ``with`` succeeds;
    processes that write the same cache at once (one per rank) never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(descriptor)
    try:
        yield Path(name)
        os.replace(name, target)
    finally:
        Path(name).unlink(missing_ok=True)


def _unshared(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous tensors, each with its own storage (safetensors refuses shared storage); copies
    only the tensors that share one."""
    seen: set[int] = set()
    result = {}
    for key, value in state.items():
        pointer = value.untyped_storage().data_ptr()
        result[key] = value.clone() if pointer in seen else value.contiguous()
        seen.add(pointer)
    return result


def _cached_copy(path: Path, what: str, cache_dir: Path) -> Path:
    """``cache_dir/<name>.tensors.safetensors``, rewritten unless made from this very file."""
    copy = cache_dir / (path.name + COPY_SUFFIX)
    record = cache_dir / (path.name + COPY_SOURCE_SUFFIX)
    source = _source_of(path)
    if copy.is_file() and record.is_file() and json.loads(record.read_text()) == source:
        log.info("reusing the tensors-only copy %s of %s", copy, path)
        return copy
    _write_copy(path, what, copy)
    with _replacing(record) as partial:
        partial.write_text(json.dumps(source, indent=2))
    return copy


@contextlib.contextmanager
def tensor_checkpoint(path: str | Path, what: str, cache_dir: str | Path | None = None) -> Iterator[Path]:
    """A path to a plain-tensor version of the checkpoint at ``path``, valid inside the ``with``.

    ``path`` itself for ``.safetensors`` files and torch files whose pickle needs no placeholder;
    else a safetensors copy of its ``state_dict``: in ``cache_dir`` when given (kept and reused), in
    a temporary folder otherwise (deleted on exit).
    """
    path = _existing_file(path, what)
    if path.suffix == ".safetensors" or not _needs_copy(path, what):
        yield path
    elif cache_dir is not None:
        with _naming_source(_cached_copy(path, what, Path(cache_dir)), path) as copy:
            yield copy
    else:
        with tempfile.TemporaryDirectory(prefix="ldce-tensors-") as folder:
            copy = Path(folder) / (path.name + COPY_SUFFIX)
            _write_copy(path, what, copy)
            with _naming_source(copy, path):
                yield copy


@contextlib.contextmanager
def _naming_source(copy: Path, source: Path) -> Iterator[Path]:
    """Re-raise errors about ``copy`` (same type) with ``source`` named instead: the user's file."""
    try:
        yield copy
    except ValueError as error:
        if str(copy) not in str(error):
            raise
        raise type(error)(str(error).replace(str(copy), f"{source} (via its tensors-only copy)")) from error


def _needs_copy(path: Path, what: str) -> bool:
    """Whether the torch file holds objects a weights-only load rejects (read without unpickling)."""
    try:
        return bool(disallowed_globals(path))
    except Exception as error:
        raise _unreadable(path, what, error) from error


def _unreadable(path: Path, what: str, error: Exception) -> CheckpointFileError:
    return CheckpointFileError(f"{path}: unreadable or truncated, expected {what} ({type(error).__name__}: {error})")
