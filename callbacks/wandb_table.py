"""``WandbCounterfactuals``: a W&B table of counterfactuals, gathered from every rank to rank 0, and their
``p(target)`` over the guided steps as a line plot."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from ldce.callbacks.summary import gather_lists
from ldce.checks import validated
from ldce.results.captions import Outcome
from ldce.results.pictures import COUNTERFACTUAL_COLUMNS, counterfactual_row, grid
from ldce.runner import Prediction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableRow:
    """One row of the ``counterfactuals`` table; the columns are these fields, in order."""

    key: str
    source: str
    target: str
    prediction: str
    source_confidence: float
    target_confidence: float
    l1: float
    l2: float
    region_share: float | None
    status: str
    confidence_steps: list[float] | None
    panel: np.ndarray

    @classmethod
    def of(cls, p: Prediction, i: int) -> TableRow:
        """Row ``i`` of a batch's prediction; its panel is the row ``grid.png`` would show, with headers."""
        r = p.result
        consensus = None if r.consensus is None else r.consensus[i]
        region = None if r.region is None else r.region[i, 0]
        outcome = Outcome(
            source=p.label(int(p.labels[i])),
            target=p.label(int(p.targets[i])),
            before=p.label(int(r.source_prediction[i])),
            before_confidence=float(r.source_confidence[i]),
            after=p.label(int(r.prediction[i])),
            after_confidence=float(r.confidence[i]),
            target_confidence=float(r.target_confidence[i]),
            flipped=int(r.prediction[i]) == int(p.targets[i]),
            already_target=bool(p.already_target[i]),
            region_share=None if region is None else float(region.mean()),
        )
        row = counterfactual_row(p.originals[i], r.images[i], outcome, consensus, region)
        curve = r.trace.target_probability
        return cls(
            key=p.keys[i],
            source=outcome.source,
            target=outcome.target,
            prediction=outcome.after,
            source_confidence=float(r.source_confidence[i]),
            target_confidence=outcome.target_confidence,
            l1=float(r.l1[i]),
            l2=float(r.l2[i]),
            region_share=outcome.region_share,
            status=outcome.status,
            confidence_steps=None if curve is None else [round(float(v), 4) for v in curve[i]],
            panel=np.asarray(grid([row], COUNTERFACTUAL_COLUMNS)),
        )

    @property
    def caption(self) -> str:
        return f"{self.key}: {self.source} → {self.target} ({self.status}, now {self.prediction})"


COLUMNS = [field.name for field in dataclasses.fields(TableRow) if field.name != "confidence_steps"]
FAILURE_COLUMNS = ["key", "reason", "shard"]
"""The columns of the ``failures`` table: ``datamodules.batch.Failure``'s fields."""


@contextmanager
def staged_in(folder: Path) -> Iterator[None]:
    """W&B stages a table's files (its images too) under ``WANDB_DATA_DIR`` (default: the user's data
    folder); within this block they are staged in ``folder``, so that a run's files stay in its output folder."""
    before = os.environ.get("WANDB_DATA_DIR")
    os.environ["WANDB_DATA_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["WANDB_DATA_DIR"]
        else:
            os.environ["WANDB_DATA_DIR"] = before


def confidence_plot(rows: list[TableRow]):
    """``p(target)`` over the guided steps, one line per row (``None`` when no row has the curve)."""
    import wandb

    curves = [row for row in rows if row.confidence_steps]
    if not curves:
        return None
    return wandb.plot.line_series(
        xs=[list(range(1, len(row.confidence_steps) + 1)) for row in curves],
        ys=[row.confidence_steps for row in curves],
        keys=[row.key for row in curves],
        title="p(target | x̂0) over the guided steps",
        xname="guided step",
    )


class WandbCounterfactuals(Callback):
    """Log a table ``counterfactuals`` (:class:`TableRow`) to the run's W&B logger.

    Each row's panel is the row of ``grid.png`` (images enlarged, captioned, with colour bars); the panels
    are also logged as images ``panels`` (in an offline run files under ``files/media/images``), and
    ``p(target)`` over the guided steps as the line plot ``confidence_steps``. The table's own files are
    staged under ``<save_dir>/wandb/data`` (:func:`staged_in`), inside the output folder. W&B only logs
    on rank 0, so each rank keeps its first ``max_rows_per_rank`` rows (small uint8 images) and
    rank 0 gathers them at the end; the number of inputs left out of the table is logged, and every
    input is in the results folder regardless. Inputs that could not be used are logged, all of them, as
    the table ``failures`` (key, reason, shard). Without a ``WandbLogger`` this callback does nothing.

    Args:
        max_rows_per_rank: rows each rank contributes to the table.
    """

    @validated
    def __init__(self, max_rows_per_rank: NonNegativeInt = 64) -> None:
        self.max_rows_per_rank = max_rows_per_rank
        self.rows: list[TableRow] = []
        self.failures: list[list[str | None]] = []
        self.left_out = 0

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows, self.failures, self.left_out = [], [], 0

    def on_predict_batch_end(self, trainer, pl_module, outputs: Prediction, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        self.failures.extend([f.key, f.reason, f.shard] for f in outputs.failures)
        room = max(0, self.max_rows_per_rank - len(self.rows))
        self.rows.extend(TableRow.of(outputs, i) for i in range(min(room, len(outputs.keys))))
        self.left_out += max(0, len(outputs.keys) - room)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        rows, failures = gather_lists(self.rows), gather_lists(self.failures)
        left_out = sum(gather_lists([self.left_out]))
        if not trainer.is_global_zero:
            return
        import wandb

        data = [
            [getattr(row, name) for name in COLUMNS[:-1]] + [wandb.Image(row.panel, caption=row.caption)]
            for row in rows
        ]
        with staged_in(Path(trainer.logger.save_dir) / "wandb" / "data"):
            trainer.logger.log_table("counterfactuals", columns=COLUMNS, data=data)
            if failures:
                trainer.logger.log_table("failures", columns=FAILURE_COLUMNS, data=failures)
            plot = confidence_plot(rows)
            if plot is not None:
                trainer.logger.experiment.log({"confidence_steps": plot})
        trainer.logger.log_image("panels", images=[row.panel for row in rows], caption=[row.caption for row in rows])
        trainer.logger.log_metrics(
            {"table/rows": len(rows), "table/left_out": left_out, "table/failures": len(failures)}
        )
        if left_out:
            log.info("W&B table holds %d counterfactuals; %d more are only in the results folder", len(rows), left_out)
