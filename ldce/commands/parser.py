"""How ``ldce`` reads its command lines: one-line parser errors with a suggestion, configs that ship
with ldce by name, ldce 0.1 configs and flags in their current form, and training configs kept apart
from ``ldce predict`` configs."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningArgumentParser

import ldce
from ldce.checks import did_you_mean
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
        message = self.choice_error(message) or subclass_option_error(message) or message
        super().error(message + (console.suggestion(unknown, self.known_options()) if unknown else ""), ex)

    def actions(self) -> list[Any]:
        """Every action of this parser and of its subcommands' parsers."""
        parsers, actions = [self], []
        while parsers:
            parser = parsers.pop()
            actions += parser._actions
            parsers += [p for a in parser._actions if isinstance(a.choices, dict) for p in a.choices.values()]
        return actions

    def known_options(self) -> list[str]:
        """Every option string of this parser and of its subcommands' parsers."""
        return [option for action in self.actions() for option in action.option_strings]

    def choice_error(self, message: str) -> str | None:
        """jsonargparse's message for a value outside a ``Literal`` option's choices, in one line naming
        them all and the closest (jsonargparse names only ``int`` when a string misses ``Literal[1, "a"]``)."""
        found = re.search(r'Parser key "([\w.]+)":\s*Expected a .*?Got value: (.*)', message, flags=re.DOTALL)
        if not found:
            return None
        key, value = found.group(1), found.group(2).strip()
        hints = [vars(action).get("_typehint") for action in self.actions() if action.dest == key]
        choices = [choice for hint in hints for choice in _choices(hint)]
        if not choices:
            return None
        return f"--{key}: {value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}"


def subclass_option_error(message: str) -> str | None:
    """jsonargparse's dump for an option the chosen class does not take (``--data.limt`` for
    ``ldce.demo.DemoShard``), in one line naming the class and its closest parameter."""
    pattern = r'Parser key "([\w.]+)":.*?given class_path \'([\w.]+)\':\s*Option \'(\w+)\' is not accepted'
    found = re.search(pattern, message, flags=re.DOTALL)
    if not found:
        return None
    key, class_path, option = found.groups()
    module, _, name = class_path.rpartition(".")
    parameters = inspect.signature(vars(importlib.import_module(module))[name]).parameters
    known = [parameter for parameter in parameters if parameter not in ("self", "args", "kwargs")]
    closest = did_you_mean(option, known) or f"; its options: {', '.join(known)}"
    return f"--{key}.{option}: {class_path} takes no option {option!r}{closest}"


def _choices(hint: Any) -> list[str]:
    """The values a ``Literal``, ``bool`` or optional one of them allows, as typed on a command line."""
    if hint is bool:
        return ["true", "false"]
    if get_origin(hint) is Literal:
        return [str(choice) for choice in get_args(hint)]
    if get_origin(hint) in (Union, UnionType) and type(None) in get_args(hint):
        return [choice for arg in get_args(hint) if arg is not type(None) for choice in _choices(arg)]
    return []


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
