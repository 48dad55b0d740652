"""``WandbCounterfactuals``: a W&B table of counterfactuals, gathered from every rank to rank 0."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from ldce.callbacks.summary import gather_lists
from ldce.checks import validated
from ldce.results.pictures import panel
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
    panel: np.ndarray

    @classmethod
    def of(cls, p: Prediction, i: int) -> TableRow:
        """Row ``i`` of a batch's prediction."""
        r = p.result
        consensus = None if r.consensus is None else r.consensus[i]
        region = None if r.region is None else r.region[i, 0]
        return cls(
            key=p.keys[i],
            source=p.label(int(p.labels[i])),
            target=p.label(int(p.targets[i])),
            prediction=p.label(int(r.prediction[i])),
            source_confidence=float(r.source_confidence[i]),
            target_confidence=float(r.target_confidence[i]),
            l1=float(r.l1[i]),
            l2=float(r.l2[i]),
            region_share=None if region is None else float(region.mean()),
            panel=panel(p.originals[i], r.images[i], consensus, region),
        )

    @property
    def caption(self) -> str:
        return f"{self.key}: {self.source} → {self.target} (now {self.prediction})"


COLUMNS = [field.name for field in dataclasses.fields(TableRow)]


class WandbCounterfactuals(Callback):
    """Log a table ``counterfactuals`` (:class:`TableRow`) to the run's W&B logger.

    The panels are also logged as images ``panels`` (in an offline run they are files under
    ``files/media/images``; W&B keeps a table's own images outside the run folder). W&B only logs
    on rank 0, so each rank keeps its first ``max_rows_per_rank`` rows (small uint8 images) and
    rank 0 gathers them at the end; the number of inputs left out of the table is logged, and every
    input is in the results folder regardless. Without a ``WandbLogger`` this callback does nothing.

    Args:
        max_rows_per_rank: rows each rank contributes to the table.
    """

    @validated
    def __init__(self, max_rows_per_rank: NonNegativeInt = 64) -> None:
        self.max_rows_per_rank = max_rows_per_rank
        self.rows: list[TableRow] = []
        self.left_out = 0

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows, self.left_out = [], 0

    def on_predict_batch_end(self, trainer, pl_module, outputs: Prediction, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        room = max(0, self.max_rows_per_rank - len(self.rows))
        self.rows.extend(TableRow.of(outputs, i) for i in range(min(room, len(outputs.keys))))
        self.left_out += max(0, len(outputs.keys) - room)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        rows, left_out = gather_lists(self.rows), sum(gather_lists([self.left_out]))
        if not trainer.is_global_zero:
            return
        import wandb

        data = [[getattr(row, name) for name in COLUMNS[:-1]] + [wandb.Image(row.panel)] for row in rows]
        trainer.logger.log_table("counterfactuals", columns=COLUMNS, data=data)
        trainer.logger.log_image("panels", images=[row.panel for row in rows], caption=[row.caption for row in rows])
        trainer.logger.log_metrics({"table/rows": len(rows), "table/left_out": left_out})
        if left_out:
            log.info("W&B table holds %d counterfactuals; %d more are only in the results folder", len(rows), left_out)
