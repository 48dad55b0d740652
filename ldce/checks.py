"""Validation of typed settings: each rule is declared once, as the type of its field or argument.

``check(name, value, kind)`` applies a type annotation to a value at run time — jsonargparse's
restricted number types (``PositiveInt``, ``ClosedUnitInterval``, …), ``Literal``, ``bool``,
``int``, ``float``, ``str`` and ``X | None`` — and raises ``ValueError`` naming the field. The same
annotations make LightningCLI reject bad values at parse time, so a config and a Python caller
meet the same rule with the same wording. Other annotations (modules, classes) are not checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import numbers
import operator
import re
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar, Union

F = TypeVar("F", bound=Callable[..., Any])


SYMBOLS = {operator.gt: ">", operator.ge: "≥", operator.lt: "<", operator.le: "≤", operator.eq: "=", operator.ne: "≠"}


def _is_restricted_number(kind: Any) -> bool:
    """jsonargparse's ``restricted_number_type`` classes carry their rule in ``_restrictions``."""
    return isinstance(kind, type) and issubclass(kind, (int, float)) and hasattr(kind, "_restrictions")


def _problem(value: Any, kind: Any) -> str | None:
    """Why ``value`` does not fit ``kind``, or ``None`` when it fits (or ``kind`` is not checked)."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        problems = [_problem(value, option) for option in options if option is not type(None)]
        return None if any(p is None for p in problems) else problems[0]
    if origin is Literal:
        allowed = typing.get_args(kind)
        if any(value == option and type(value) is type(option) for option in allowed):
            return None
        return f"must be one of {', '.join(map(repr, allowed))}, got {value!r}"
    if _is_restricted_number(kind):
        integral = issubclass(kind, int)
        base = "an integer" if integral else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integral else numbers.Real):
            return f"must be {base}, got {value!r}"
        try:
            kind(value)
        except ValueError:
            rule = " and ".join(f"{SYMBOLS[op]} {bound}" for op, bound in kind._restrictions)
            return f"must be {base} {rule}, got {value!r}"
        return None
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind is int:
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if integral else f"must be an integer, got {value!r}"
    if kind is float:
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if real else f"must be a number, got {value!r}"
    if kind is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    return None


def check(name: str, value: Any, kind: Any) -> Any:
    """Return ``value`` if it fits the annotation ``kind``; else ``ValueError("<name> …")``."""
    problem = _problem(value, kind)
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    return value


def check_fields(instance: Any) -> None:
    """Check every field of a dataclass instance against its annotation (call from ``__post_init__``)."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        check(field.name, getattr(instance, field.name), hints[field.name])


def validated(function: F) -> F:
    """Decorate a function (e.g. an ``__init__``) to check its arguments against their annotations on
    every call. The signature and docstring stay visible (``__wrapped__``), so LightningCLI's parser
    reads the same annotations for parse-time checks."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        hints = typing.get_type_hints(function)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name in hints:
                check(name, value, hints[name])
        return function(*args, **kwargs)

    return checked  # type: ignore[return-value]


def class_index(value: Any, field: str) -> int | None:
    """A non-negative integer from an ``int``, a string or bytes (a ``.cls`` entry, a CSV cell);
    ``None`` and blank text give ``None``; anything else raises ``ValueError("invalid <field> …")``."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str) and re.fullmatch(r"\s*\+?\d+\s*", text):
        return int(text)
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    raise ValueError(f"invalid {field} {text!r} (expected a class index ≥ 0)")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line, ``<prog>: error: <message>``, without the usage block
    (``--help`` shows it), exit status 2: the command line of ldce's tools."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def did_you_mean(unknown: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """``"; did you mean X?"`` for the ``known`` value closest to ``unknown`` ignoring case (difflib's ratio
    ≥ ``cutoff``), empty when none is that close: the one wording of every "unknown name" message."""
    by_folded = {name.casefold(): name for name in reversed(list(known))}
    close = difflib.get_close_matches(unknown.casefold(), list(by_folded), n=1, cutoff=cutoff)
    return f"; did you mean {by_folded[close[0]]}?" if close else ""
