"""The ``ldce`` console command: the front (``ldce/commands/front.py``) answers at once; a command that
runs loads ``ldce.cli`` (torch, Lightning) only then."""

from __future__ import annotations

import sys

from ldce.commands import front


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ldce`` console command."""
    command, args, level = front.parse(sys.argv[1:] if argv is None else argv)
    from ldce import cli  # the heavy part, only for a command that runs

    cli.run(command, args, level)
