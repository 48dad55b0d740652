"""Seconds that ``report.html`` adds to a run: :func:`ldce.report.write_report` on a finished results folder.

    python benchmarks/report_speed.py [--results outputs/quickstart] [--repeats 5]

Run ``ldce predict --config quickstart`` first (64 inputs). Prints the folder's number of records and
the median, min and max seconds of ``repeats`` writes (imports excluded: a run has loaded them already).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from ldce.report import write_report
from ldce.report.folder import read_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="outputs/quickstart")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        write_report(args.results)
        seconds.append(time.perf_counter() - start)
    records = len(read_folder(Path(args.results)).records)
    median, least, most = statistics.median(seconds), min(seconds), max(seconds)
    print(f"{records} records: median {median:.2f} s, min {least:.2f} s, max {most:.2f} s")


if __name__ == "__main__":
    main()
