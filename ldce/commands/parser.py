"""How ``ldce`` reads its command lines: one-line parser errors with a suggestion, configs that ship
with ldce by name, ldce 0.1 configs and flags in their current form, and training configs kept apart
from ``ldce predict`` configs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningArgumentParser

import ldce
from ldce.commands import console
from ldce.compat.legacy import migrate_argv, migrate_config

log = logging.getLogger("ldce")


LISTED_SUBCLASSES = 12
"""Beyond this many known subclasses, ``--help`` gives only their number (``nn.Module`` has hundreds)."""


class LDCEHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with a long "known subclasses" list replaced by its length."""

    def _get_help_string(self, action: Any) -> str:
        text = super()._get_help_string(action)
        head, found, tail = text.partition(", known subclasses: ")
        names = tail.removesuffix(")").split(", ")
        if not found or len(names) <= LISTED_SUBCLASSES:
            return text
        return f"{head}, any of {len(names)} known subclasses)"


class LDCEParser(LightningArgumentParser):
    """A parser whose errors raise (one line at the top) and suggest the closest known option, and whose
    help does not list a type's hundreds of known subclasses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"formatter_class": LDCEHelpFormatter, **kwargs, "exit_on_error": False})

    def error(self, message: str, ex: Exception | None = None) -> None:
        unknown = None if "did you mean" in message else console.unknown_key(message)
        super().error(message + (console.suggestion(unknown, self.known_options()) if unknown else ""), ex)

    def known_options(self) -> list[str]:
        """Every option string of this parser and of its subcommands' parsers."""
        parsers, options = [self], []
        while parsers:
            parser = parsers.pop()
            for action in parser._actions:
                options += action.option_strings
                parsers += list(action.choices.values()) if isinstance(action.choices, dict) else []
        return options


def current_form(args: list[str]) -> list[str]:
    """``args`` with ldce 0.1 configs and flags rewritten (see ``ldce.compat.legacy``), warning once."""
    split = [part for arg in args for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])]
    args, changes = migrate_argv(split)
    for i in range(len(args) - 1):
        if args[i] in ("--config", "-c") and Path(args[i + 1]).is_file():
            config, found = migrate_config(yaml.safe_load(Path(args[i + 1]).read_text()) or {})
            if found:
                changes += [f"{args[i + 1]}: {change}" for change in found]
                args[i + 1] = yaml.safe_dump(config, sort_keys=False)
    if changes:
        log.warning(
            "ldce 0.1 keys read in their new places (update the files; support ends with ldce 0.3): %s",
            "; ".join(changes),
        )
    return args


def packaged_configs(args: list[str]) -> list[str]:
    """``--config NAME`` (or ``NAME.yaml``) for a config that ships with ldce (``quickstart``) becomes its
    path; a value that is neither a file, such a name nor YAML text raises ``UserError`` with the closest name."""
    resolved = [part for arg in args for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])]
    for i in range(len(resolved) - 1):
        value = resolved[i + 1]
        if resolved[i] not in ("--config", "-c") or Path(value).exists() or any(c in value for c in ":{\n"):
            continue
        try:
            resolved[i + 1] = str(ldce.shipped_config(value))
        except LookupError as error:
            raise console.UserError(f"--config {error}") from None
    return resolved


def check_training_config(args: list[str]) -> None:
    """Refuse an ``ldce predict`` config given to ``fit`` / ``validate`` / ``test``."""
    for i, arg in enumerate(args[:-1]):
        path = Path(args[i + 1])
        if arg in ("--config", "-c") and path.is_file():
            model = (yaml.safe_load(path.read_text()) or {}).get("model")
            if isinstance(model, dict) and "class_path" not in model:
                raise console.UserError(
                    f"{path} is an ldce predict config; fit, validate and test take training configs"
                )
