"""Reading weight files safely and offline: safetensors, torch pickles and pickles of numpy arrays.

Released checkpoints are torch pickles. CompVis' cin256-v2 ``model.ckpt`` and miniSD's ``.ckpt`` are
PyTorch Lightning checkpoints that may hold, next to ``state_dict``, training bookkeeping: callback
states keyed by Lightning classes, optimizer states, hyperparameters, numpy scalars. Plain
``torch.load(weights_only=True)`` rejects such objects, and ``weights_only=False`` would run whatever
code the pickle names. :func:`load_torch_file` unpickles with torch's weights-only unpickler and lets
every global that unpickler does not allow resolve to :class:`Placeholder`, an inert class whose
construction and state setting do nothing: tensors, containers and numbers load as usual, the
bookkeeping becomes placeholders that nothing uses. VGGFace2's ``.pkl`` (a pickle of numpy arrays) is
read by an unpickler that builds numpy arrays and nothing else.

Every failure is a ``FileNotFoundError`` or a :class:`CheckpointError` naming the file and what was
expected of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

log = logging.getLogger(__name__)

NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}
"""What a pickle of numpy arrays may reference."""


class CheckpointError(ValueError):
    """A weight file that cannot be read or does not fit its model; the message names the file."""


class Placeholder:
    """Stands in for any object whose class the weights-only unpickler does not allow; inert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Accept and drop whatever the pickle passes."""

    def __setstate__(self, state: object) -> None:
        """Drop the pickled state."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and dicts only: any other global in the file is refused."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are expected")
        if module.startswith("numpy.core") and importlib.util.find_spec("numpy._core") is not None:
            module = module.replace("numpy.core", "numpy._core", 1)
        return getattr(importlib.import_module(module), name)


def _existing(path: str | Path, what: str, kind: str) -> Path:
    found = Path(path)
    if not (found.is_dir() if kind == "folder" else found.is_file()):
        where = f"{str(path)!r} is not a local {kind}"
        raise FileNotFoundError(f"{what} not found: {where} (models load from local paths only, never from the hub)")
    return found


def existing_file(path: str | Path, what: str) -> Path:
    """``Path(path)`` if it is a local file; else ``FileNotFoundError`` naming ``what`` (never a download)."""
    return _existing(path, what, "file")


def existing_dir(path: str | Path, what: str) -> Path:
    """``Path(path)`` if it is a local folder; else ``FileNotFoundError`` naming ``what`` (never a hub look-up)."""
    return _existing(path, what, "folder")


def disallowed_globals(path: Path) -> list[str]:
    """The pickle globals of a zip-format torch file that the weights-only unpickler rejects.

    Read statically from the pickle, without unpickling; ``[]`` for the legacy (pre-zip) format,
    which :func:`load_torch_file` then reads with plain ``weights_only``.
    """
    if not zipfile.is_zipfile(path):
        return []
    return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))))


def load_torch_file(path: str | Path, what: str) -> Any:
    """Unpickle a torch file on CPU with rejected globals read as :class:`Placeholder` (no code runs)."""
    path = existing_file(path, what)
    try:
        names = disallowed_globals(path)
        with torch.serialization.safe_globals([(Placeholder, name) for name in names]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise unreadable(path, what, error) from error
    if names:
        log.info("%s: read %s as inert placeholders (training bookkeeping, not used)", path, names)
    return content


def _load_array_pickle(path: Path, what: str) -> Any:
    try:
        with path.open("rb") as handle:
            arrays = _ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as error:
        raise unreadable(path, what, error) from error
    if not isinstance(arrays, dict):
        raise CheckpointError(f"{path}: expected {what}: a pickled dict of numpy arrays, found {type(arrays).__name__}")
    return {name: torch.as_tensor(value) for name, value in arrays.items()}


def load_file_content(path: str | Path, what: str) -> Any:
    """Whatever a weight file holds: ``.safetensors`` → tensors, ``.pkl`` → numpy arrays as tensors,
    anything else → a torch pickle read by :func:`load_torch_file`."""
    path = existing_file(path, what)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as error:
            raise unreadable(path, what, error) from error
    return _load_array_pickle(path, what) if path.suffix == ".pkl" else load_torch_file(path, what)


def _is_tensor_dict(content: Any) -> bool:
    return isinstance(content, dict) and bool(content) and all(isinstance(v, Tensor) for v in content.values())


def read_tensors(
    path: str | Path, what: str, key: str | None = None, strip_prefix: str | None = None
) -> dict[str, Tensor]:
    """The state dict of a weight file: ``content[key]`` when ``key`` is given, else the file's top
    level when that is a dict of tensors, else its ``state_dict`` entry (Lightning, most trainers).

    ``strip_prefix`` (e.g. ``"module."``) is removed from the names that start with it.
    Raises ``FileNotFoundError`` or :class:`CheckpointError` naming the file and ``what``.
    """
    content = load_file_content(path, what)
    if key is not None:
        if not isinstance(content, dict) or key not in content:
            found = sorted(map(str, content))[:10] if isinstance(content, dict) else type(content).__name__
            raise CheckpointError(f"{path}: expected {what} under {key!r}; found {found}")
        content = content[key]
    elif not _is_tensor_dict(content) and isinstance(content, dict) and "state_dict" in content:
        content = content["state_dict"]
    if not isinstance(content, dict) or not content:
        raise CheckpointError(f"{path}: expected {what}: a non-empty dict of tensors, found {type(content).__name__}")
    others = sorted(f"{k}: {type(v).__name__}" for k, v in content.items() if not isinstance(v, Tensor))
    if others:
        nested = sorted(str(k) for k, v in content.items() if _is_tensor_dict(v))
        hint = f"; the weights may sit under {nested} — name that key (state_dict_key)" if nested else ""
        raise CheckpointError(f"{path}: expected {what}, but {len(others)} entries are not tensors: {others[:5]}{hint}")
    if strip_prefix:
        content = {name.removeprefix(strip_prefix): value for name, value in content.items()}
    return content


def unreadable(path: Path, what: str, error: Exception) -> CheckpointError:
    """The error for a file that exists but cannot be read as ``what``."""
    return CheckpointError(f"{path}: unreadable or truncated, expected {what} ({type(error).__name__}: {error})")
