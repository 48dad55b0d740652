"""``report.html``: a static page of a results folder (settings, counts, metrics, every input with its
pictures), written at the end of every ``ldce predict`` / ``ldce explain`` run and by ``ldce report``."""

from ldce.report.page import PAGE, write_report

__all__ = ["PAGE", "write_report"]
