"""A minimal reader of MATLAB level-5 ``.mat`` files, without scipy: Flowers-102's
``imagelabels.mat`` and ``setid.mat`` (numeric matrices) and the ImageNet devkit's ``meta.mat`` (a
struct array of numbers and strings).

Format (MATLAB "MAT-File Format", level 5): a 128-byte header whose last two bytes are the
endianness mark ``IM``/``MI``, then data elements. Each element has an 8-byte tag (data type,
byte count) — or a 4-byte "small element" tag when the count fits in the upper half of the first
word — and its data padded to 8 bytes. A variable is a ``miMATRIX`` element holding array flags,
dimensions and name, then its content: the real part of a numeric or character array; one
``miMATRIX`` per cell of a cell array; the field-name length, the field names and one ``miMATRIX``
per element and field of a struct array. Top-level variables may be wrapped in zlib-compressed
``miCOMPRESSED`` elements. Read: real numeric arrays (``numpy``), character arrays (``str``),
cell arrays (lists) and struct arrays (lists of dicts), in column-major element order; complex,
sparse and other variables are skipped.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

MI_MATRIX, MI_COMPRESSED, MI_UTF8 = 14, 15, 16
CELL_CLASS, STRUCT_CLASS, CHAR_CLASS = 1, 2, 4
COMPLEX_FLAG = 0x800
NUMERIC_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
NUMERIC_CLASSES = frozenset(range(6, 16))  # mxDOUBLE_CLASS … mxUINT64_CLASS
HEADER_BYTES = 128


class MatFileError(ValueError):
    """A file that is not a level-5 MAT file this reader understands; the message names it."""


def _elements(data: bytes, order: str) -> list[tuple[int, bytes]]:
    """``(type, payload)`` of the data elements in ``data`` (small or regular tags, 8-byte padding)."""
    elements, offset = [], 0
    while offset + 8 <= len(data):
        word, count = np.frombuffer(data, f"{order}u4", 2, offset)
        if word >> 16:  # small element: count in the upper half, data in the next 4 bytes
            elements.append((int(word & 0xFFFF), data[offset + 4 : offset + 4 + int(word >> 16)]))
            offset += 8
            continue
        start = offset + 8
        elements.append((int(word), data[start : start + int(count)]))
        offset = start + (int(count) if word == MI_COMPRESSED else -(-int(count) // 8) * 8)
    return elements


def _array(parts: list[tuple[int, bytes]], dims: tuple[int, ...], order: str) -> np.ndarray | None:
    """A real numeric array from its data element (``None`` for other data types)."""
    kind, real = parts[0]
    if kind not in NUMERIC_TYPES:
        return None
    return np.frombuffer(real, f"{order}{NUMERIC_TYPES[kind]}").reshape(dims, order="F")


def _text(parts: list[tuple[int, bytes]], order: str) -> str:
    """A character array (UTF-16 code units, or UTF-8) as one string, in column-major order."""
    kind, data = parts[0]
    return data.decode("utf-8") if kind == MI_UTF8 else "".join(map(chr, np.frombuffer(data, f"{order}u2")))


def _struct(parts: list[tuple[int, bytes]], count: int, order: str) -> list[dict[str, Any]]:
    """Struct array elements: field-name length, names, then each element's fields in order."""
    length = int(np.frombuffer(parts[0][1], f"{order}i4")[0])
    names = [parts[1][1][i : i + length].rstrip(b"\0").decode("ascii") for i in range(0, len(parts[1][1]), length)]
    values = [_value(payload, order)[1] for _, payload in parts[2:]]
    return [dict(zip(names, values[i * len(names) : (i + 1) * len(names)], strict=True)) for i in range(count)]


def _value(payload: bytes, order: str) -> tuple[str, Any]:
    """``(name, value)`` of a ``miMATRIX`` payload; ``value`` is ``None`` for what is not read."""
    parts = _elements(payload, order)
    if len(parts) < 3:  # an empty matrix may have no content at all
        return "", None
    flags = int(np.frombuffer(parts[0][1], f"{order}u4", 1)[0])
    dims = tuple(int(d) for d in np.frombuffer(parts[1][1], f"{order}i4"))
    name, content, kind = parts[2][1].decode("ascii"), parts[3:], flags & 0xFF
    if flags & COMPLEX_FLAG or not content and kind != CELL_CLASS:
        return name, None
    if kind == CELL_CLASS:
        return name, [_value(payload, order)[1] for _, payload in content]
    if kind == STRUCT_CLASS:
        return name, _struct(content, int(np.prod(dims)), order)
    if kind == CHAR_CLASS:
        return name, _text(content, order)
    return name, _array(content, dims, order) if kind in NUMERIC_CLASSES else None


def read_mat(path: str | Path) -> dict[str, Any]:
    """The variables of a level-5 MAT file this reader understands, by name (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MAT file {path} not found")
    data = path.read_bytes()
    mark = data[HEADER_BYTES - 2 : HEADER_BYTES]
    if len(data) < HEADER_BYTES or mark not in (b"IM", b"MI"):
        raise MatFileError(f"{path}: not a MATLAB level-5 MAT file (no IM/MI mark at byte 126)")
    order = "<" if mark == b"IM" else ">"
    variables: dict[str, Any] = {}
    try:
        for kind, payload in _elements(data[HEADER_BYTES:], order):
            if kind == MI_COMPRESSED:
                ((kind, payload),) = _elements(zlib.decompress(payload), order)
            name, value = _value(payload, order) if kind == MI_MATRIX else ("", None)
            if value is not None:
                variables[name] = value
    except (ValueError, IndexError, UnicodeDecodeError, zlib.error) as error:
        raise MatFileError(f"{path}: corrupt or truncated MAT file ({error})") from error
    return variables


def read_vector(path: str | Path, name: str) -> np.ndarray:
    """Variable ``name`` of a MAT file as a flat int64 vector (e.g. ``labels`` or ``tstid``)."""
    variables = read_mat(path)
    if not isinstance(variables.get(name), np.ndarray):
        raise MatFileError(f"{path}: no numeric variable {name!r} (found {sorted(variables)})")
    return variables[name].ravel(order="F").astype(np.int64)
