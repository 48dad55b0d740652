"""How the ``ldce`` command talks: log levels, quiet frameworks, and user errors as one line.

By default ldce's own messages are shown at ``INFO`` and the frameworks' chatter is hidden: Lightning's
tips and device banners, W&B's banner, warnings about batch-size inference, deprecations of code ldce
does not own. ``-q`` shows warnings and errors only, ``-v`` (``--log_level DEBUG``) shows everything,
with tracebacks. A user error — a bad value, an unknown key, a missing file, an unusable input — is
printed as ``ldce <command>: error: <one line>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterable

from ldce.checks import did_you_mean

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MESSAGE_LIMIT = 400
"""Characters of an error message shown (``-v`` shows all, with the traceback)."""
FRAMEWORKS = {
    **dict.fromkeys(
        ("lightning.pytorch", "lightning.fabric", "lightning_utilities", "torch.distributed", "wandb"), logging.WARNING
    ),
    "torch.utils.cpp_extension": logging.ERROR,
}
"""The frameworks' loggers → the least level they show without ``-v`` (``torch.utils.cpp_extension`` warns
``No CUDA runtime is found`` when compiling on a CPU, which says nothing to an ldce user)."""
QUIET_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r".*Couldn't infer the batch indices",
    r".*You have overridden `transfer_batch_to_device`",
    r".*Trying to infer the `batch_size`",
    r".*does not have many workers",
    r".*LightningCLI's args parameter is intended to run from within Python",
    r".*Found \d+ module\(s\) in eval mode",
    r".*The anonymous setting has no effect",
    r".*No seed found, seed set to",
)


def log_level(argv: list[str]) -> tuple[str, list[str]]:
    """The level set by ``-q``, ``-v`` or ``--log_level LEVEL`` anywhere in ``argv``, and ``argv`` without them."""
    level, rest, args = "INFO", [], iter(argv)
    for arg in args:
        if arg in ("-q", "--quiet"):
            level = "WARNING"
        elif arg in ("-v", "--verbose"):
            level = "DEBUG"
        elif arg == "--log_level" or arg.startswith("--log_level="):
            level = (arg.partition("=")[2] or next(args, "")).upper()
            if level not in LEVELS:
                raise UserError(f"--log_level must be one of {', '.join(LEVELS)}, got {level!r}")
        else:
            rest.append(arg)
    return level, rest


def configure(level: str) -> None:
    """ldce's loggers at ``level``; the frameworks' at ``WARNING`` (all at ``DEBUG`` with ``-v``)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("ldce").setLevel(level)
    verbose = level == "DEBUG"
    for name, quiet in FRAMEWORKS.items():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else quiet)
    if not verbose:
        os.environ.setdefault("WANDB_SILENT", "true")
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(?!ldce)")


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, without a traceback."""


def compact(message: str) -> str:
    """A multi-line message (jsonargparse's) as one line."""
    return re.sub(r"\s+", " ", message).strip()


def suggestion(unknown: str, known: Iterable[str]) -> str:
    """``; did you mean …?`` for the known option closest to ``unknown`` (empty when none is close)."""
    return did_you_mean(unknown, known, cutoff=0.75)


def unknown_key(message: str) -> str | None:
    """The option or key a parser message says it does not know, if it says so."""
    says = r"(?:does not accept nested key|does not accept option|unrecognized arguments:|no such option)"
    pattern = says + r"\s*[\"']?(--?[\w.]+|[\w.]+)"
    found = re.search(pattern, message, flags=re.IGNORECASE)
    return found.group(1) if found else None


USER_ERRORS = (UserError, argparse.ArgumentError, ValueError, FileNotFoundError, ImportError, NotADirectoryError)
"""Errors that report a mistake in the command, config or inputs (with :func:`user_errors`' own)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """:data:`USER_ERRORS`, YAML syntax errors, and — once Lightning is loaded — its
    MisconfigurationException (which says, e.g., that a model has no ``test_step``)."""
    import yaml

    if "lightning" not in sys.modules:  # nothing can have raised it; the front stays free of torch
        return (*USER_ERRORS, yaml.YAMLError)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    return (*USER_ERRORS, yaml.YAMLError, MisconfigurationException)


def _cause(error: BaseException) -> BaseException | None:
    """The error ``error`` was raised from or during (none after ``raise … from None``)."""
    return error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def root_cause(error: BaseException) -> BaseException:
    """The error to show: the outermost parser error in ``error``'s chain (it names the key), else the
    innermost user error (frameworks wrap the exceptions of constructors)."""
    chain = [error]
    while (cause := _cause(chain[-1])) is not None and len(chain) < 50:
        chain.append(cause)
    parser_errors = [e for e in chain if isinstance(e, argparse.ArgumentError)]
    user_errors_ = [e for e in chain if isinstance(e, user_errors())]
    return (parser_errors or user_errors_[::-1] or [error])[0]


def fail(command: str, error: BaseException, level: str) -> None:
    """Print ``error`` as ``ldce <command>: error: …`` (its traceback too at ``DEBUG``) and exit 2."""
    if level == "DEBUG":
        import traceback

        traceback.print_exception(error)
    cause = root_cause(error)
    text = compact(str(cause)) or type(cause).__name__
    text = text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
    prefix = f"ldce {command}" if command else "ldce"
    print(f"{prefix}: error: {text}", file=sys.stderr)
    sys.exit(2)


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` (or one it wraps) is a user error (see :data:`USER_ERRORS`)."""
    return isinstance(root_cause(error), user_errors())
