"""``RunReport``: ``report.html`` of the results folder at the end of every ``ldce predict`` / ``ldce explain``."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from ldce.report import write_report

log = logging.getLogger(__name__)


class RunReport(Callback):
    """Rank 0 writes ``<output_dir>/report.html`` once the run's records are merged and its summary is
    written (this callback comes after the writer and the summary), and also when the run stops on an
    error or Ctrl-C, from the records written so far. ``ldce report --results <output_dir>`` writes
    the same page from the folder alone.

    Args:
        output_dir: the results folder.
        enabled: write the report (``--report.enabled false``: no report).
    """

    def __init__(self, output_dir: str = "outputs", enabled: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.enabled, self.started = enabled, False

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = True

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A run stopped part-way: the page of what it recorded (nothing for a run stopped before it began)."""
        if self.started:
            self._write(trainer)

    def _write(self, trainer: Trainer) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        try:
            log.info("report: %s", write_report(str(self.output_dir)).resolve())
        except (OSError, ValueError) as error:  # the run's results stand without their report
            log.error("could not write the report of %s: %s: %s", self.output_dir, type(error).__name__, error)
