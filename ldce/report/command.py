"""``ldce report --results <output_dir>``: (re)build ``report.html`` of a results folder from the folder alone.

    ldce report --results outputs/quickstart      # then open outputs/quickstart/report.html

Also works on the folder of a run that is still going or was cut off: the page shows what is recorded.
"""

from __future__ import annotations

import logging

from jsonargparse import ArgumentParser

from ldce.report.page import write_report

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    """``ldce report …``: parse ``argv`` and write the report."""
    parser = ArgumentParser(
        prog="ldce report", description="Write report.html of an ldce results folder.", exit_on_error=False
    )
    parser.add_function_arguments(write_report, as_positional=False)
    page = write_report(parser.parse_args(argv).results)
    log.info("report: %s", page.resolve())
