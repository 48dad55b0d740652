"""``ldce report --results <output_dir>``: (re)build ``report.html`` of a results folder from the folder alone.

    ldce report --results outputs/quickstart      # then open outputs/quickstart/report.html

Also works on the folder of a run that is still going or was cut off: the page shows what is recorded.
"""

from __future__ import annotations

import argparse
import logging

from jsonargparse import ArgumentParser

from ldce.report.page import write_report

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    """``ldce report …``: parse ``argv`` and write the report. Raises ``argparse.ArgumentError`` without
    ``--results`` (named as typed: jsonargparse's own message would name the key, ``results``)."""
    parser = ArgumentParser(
        prog="ldce report", description="Write report.html of an ldce results folder.", exit_on_error=False
    )
    parser.add_argument("--results", help="an ldce predict / ldce explain results folder (required)")
    results = parser.parse_args(argv).results
    if results is None:
        raise argparse.ArgumentError(None, "the following arguments are required: --results")
    log.info("report: %s", write_report(results).resolve())
