"""``ldce explain INPUT… --config C [--target T | --targets P]``: an ``ldce predict`` run over image files.

The inputs (image files, folders, ImageFolder trees, globs, CSV/JSON lists) replace the config's data;
everything else — model, writer, summary, W&B, resume — is the config's, and any ``ldce predict``
option may follow. Targets:

- ``--target 4`` or ``--target Coat``: the same class for every input (an index or a class name);
- ``--targets second_most_likely`` (the classifier's runner-up), ``binary_flip``, ``from_sample``
  (a list's target column), or ``--targets pairs.yaml`` (``source: target`` by index or name);
- neither: each input's own target where it carries one (a list's target column), else its second
  most likely class.

Results go to ``outputs/explain`` unless ``--output_dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from ldce.checks import ArgumentParser
from ldce.classifiers.names import class_of, read_class_names
from ldce.commands.console import UserError, suggestion
from ldce.compat.legacy import migrate_config

POLICIES = {
    "second_most_likely": "ldce.targets.SecondMostLikely",
    "binary_flip": "ldce.targets.BinaryFlip",
    "from_sample": "ldce.targets.FromSample",
}
DEFAULT_POLICY = {"class_path": POLICIES["from_sample"], "init_args": {"fallback": POLICIES["second_most_likely"]}}
"""Each input's own target where it carries one, else its second most likely class."""
IMAGE_FILES = "ldce.datamodules.images.ImageFilesDataModule"
OUTPUT_DIR = "outputs/explain"


def _options() -> argparse.ArgumentParser:
    """``ldce explain``'s own options (any ``ldce predict`` option may follow them)."""
    parser = ArgumentParser(
        prog="ldce explain",
        usage="ldce explain INPUT [INPUT …] --config CONFIG [--target T | --targets P] [ldce predict options]",
        description=__doc__.split("\n\n", 1)[1],
        epilog="Any `ldce predict` option may follow (ldce predict --help), e.g. --output_dir DIR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument(
        "--config", "-c", action="append", default=[], metavar="CONFIG", help="an ldce predict config (file or name)"
    )
    parser.add_argument("--target", help="one target class for every input: an index or a class name")
    parser.add_argument("--targets", help="second_most_likely, binary_flip, from_sample or a pairs .yaml file")
    parser.add_argument("--resize_mode", choices=("center_crop", "resize"), help="how images are fitted to the side")
    parser.add_argument("--batch_size", type=_positive, help="inputs per batch (default: the config's)")
    return parser


def _positive(text: str) -> int:
    """A whole number ≥ 1 (``argparse`` type)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return int(text)


def explain_help() -> str:
    """``ldce explain --help``."""
    return _options().format_help()


def _configs(args: list[str]) -> dict[str, Any]:
    """The ``--config`` files of ``args``, merged in order (each in the current form)."""
    merged: dict[str, Any] = {}
    paths = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--config", "-c")]
    for path in paths:
        config, _ = migrate_config(yaml.safe_load(Path(path).read_text()) or {}) if Path(path).is_file() else ({}, [])
        for section, value in config.items():
            merged[section] = {**merged.get(section, {}), **value} if isinstance(value, dict) else value
    return merged


def _policy(target: str | None, targets: str | None, names: list[str] | None) -> dict[str, Any]:
    """The target policy's config for ``--target`` / ``--targets`` (see the module docstring)."""
    if target is not None and targets is not None:
        raise UserError("give --target or --targets, not both")
    if target is not None:
        return {"class_path": "ldce.targets.FixedTarget", "init_args": {"target": class_of(target, names, "--target")}}
    if targets is None:
        return DEFAULT_POLICY
    if targets in POLICIES:
        return {"class_path": POLICIES[targets]}
    path = Path(targets)
    if not path.is_file():
        raise UserError(
            f"--targets {targets!r} is neither {', '.join(POLICIES)} nor a file{suggestion(targets, POLICIES)}"
        )
    pairs = yaml.safe_load(path.read_text())
    if not isinstance(pairs, dict):
        raise UserError(f"{targets}: expected a mapping of source class to target class")
    resolved: dict[int, int] = {}
    for source, target in pairs.items():
        index = class_of(source, names, f"{targets}:")
        if index in resolved:
            raise UserError(f"{targets}: source class {index} ({source!r}) is given twice")
        resolved[index] = class_of(target, names, f"{targets}:")
    return {"class_path": "ldce.targets.ClassPairs", "init_args": {"pairs": resolved}}


FLAGS = frozenset({"--print_config", "-h", "--help"})
"""Options that may stand without a value; every other ``--option`` without ``=`` takes the next word."""


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The inputs (words that are neither an option nor an option's value), anywhere in ``argv``, and the rest."""
    inputs, rest, position = [], [], 0
    while position < len(argv):
        word = argv[position]
        takes_value = word.startswith("-") and "=" not in word and word not in FLAGS
        (rest if word.startswith("-") else inputs).append(word)
        if takes_value and position + 1 < len(argv):
            rest.append(argv[position + 1])
            position += 1
        position += 1
    return inputs, rest


def predict_args(argv: list[str]) -> list[str]:
    """``ldce predict`` arguments for ``ldce explain`` arguments ``argv``."""
    inputs, rest = _split(argv)
    if not inputs:
        raise UserError("name at least one image, folder, glob or list to explain (ldce explain --help)")
    options, passed = _options().parse_known_args(rest)
    passed = [*(part for config in options.config for part in ("--config", config)), *passed]
    config = _configs(passed)
    if "model" not in config:
        raise UserError("give a config with --config (e.g. --config quickstart)")
    model, data = config["model"], (config.get("data") or {}).get("init_args", {})
    names = read_class_names(model.get("class_names"))
    init_args = {
        "inputs": inputs,
        "resize_mode": options.resize_mode or data.get("resize_mode", "center_crop"),
        "batch_size": data.get("batch_size", 4) if options.batch_size is None else options.batch_size,
        "class_names": names,
    }
    policy = _policy(options.target, options.targets, names)
    data_arg = json.dumps({"class_path": IMAGE_FILES, "init_args": init_args})
    output = [] if any(arg.split("=", 1)[0] == "--output_dir" for arg in passed) else ["--output_dir", OUTPUT_DIR]
    return ["predict", *passed, *output, "--data", data_arg, "--model.targets", json.dumps(policy)]
