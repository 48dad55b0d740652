"""The ``ldce`` command's front: the list of commands, ``--help``, ``--version``, log levels and unknown
commands — answered without importing torch or Lightning, so that they are instant."""

from __future__ import annotations

import sys

import ldce
from ldce.commands import console

TOOLS = {
    "evaluate": "ldce.results.evaluate:main",
    "shards": "ldce.datamodules.shards:main",
    "datasets": "ldce.datamodules.datasets:main",
    "targets": "ldce.datamodules.nearest_targets:main",
    "report": "ldce.report.command:main",
}
"""``ldce <tool> …`` commands beside LightningCLI's: module:function(argv)."""
COMMANDS = {
    "predict": "explain the inputs of a config's data (WebDataset shards) with its model",
    "explain": "explain image files, folders, globs or a CSV list; no shards needed",
    "evaluate": "compute the counterfactual metrics of a results folder into metrics.json",
    "report": "write report.html of a results folder: one static page of its inputs, pictures, metrics",
    "shards": "write images (a folder, an ImageFolder tree, a CSV/JSON list) as WebDataset shards",
    "datasets": "write the paper's data sets (ImageNet, CelebA-HQ, Flowers-102, Pets) as shards",
    "targets": "write nearest-other-class target files (Flowers-102, Pets)",
    "fit": "train a training config's model (the demo models, the Flowers-102 linear head)",
    "validate": "validate a training config's model",
    "test": "test a training config's model",
}
TRAINING = ("fit", "validate", "test")


def overview() -> str:
    """``ldce --help``."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(
        [
            "usage: ldce [-q | -v | --log_level LEVEL] <command> [options]",
            "",
            "Latent diffusion counterfactual explanations: what would an image have to look like for a",
            "classifier to say another class?",
            "",
            "commands:",
            *lines,
            "",
            "options: -q (warnings and errors only), -v (everything, with tracebacks), --version, -h/--help",
            "examples: ldce predict --config quickstart",
            "          ldce explain photo.png --config quickstart --target Coat --output_dir out",
            "`ldce <command> --help` lists a command's options; configs that ship with ldce: "
            + ", ".join(sorted(p.stem for p in ldce.CONFIGS.glob("*.yaml"))),
        ]
    )


def parse(argv: list[str]) -> tuple[str, list[str], str]:
    """``(command, its arguments, log level)`` of ``ldce <argv>``; answers ``--help`` / ``--version`` and
    refuses an unknown command or option itself (exiting)."""
    try:
        level, argv = console.log_level(argv)
    except console.UserError as error:
        console.fail("", error, "INFO")
    console.configure(level)
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"ldce {ldce.__version__}")
        sys.exit(0)
    command = argv[0]
    if command.startswith("-"):
        console.fail("", console.UserError(f"unknown option {command}; see ldce --help"), level)
    if command not in COMMANDS:
        hint = console.suggestion(command, COMMANDS)
        console.fail("", console.UserError(f"unknown command {command!r}{hint}; see ldce --help"), level)
    return command, argv[1:], level
