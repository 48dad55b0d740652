"""``WandbCounterfactuals``: a W&B table of counterfactuals, gathered from every rank to rank 0."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from ldce.callbacks.summary import gather_lists
from ldce.targets import class_name
from ldce.visualize import panel

log = logging.getLogger(__name__)

COLUMNS = ["key", "source", "target", "prediction", "source_confidence", "target_confidence", "l1", "l2", "panel"]


class WandbCounterfactuals(Callback):
    """Log a table ``counterfactuals`` (key, source → target, confidences, distances, and a panel
    original | counterfactual | |difference| | consensus map) to the run's W&B logger.

    The panels are also logged as images ``panels`` (in an offline run they are files under
    ``files/media/images``; W&B keeps a table's own images outside the run folder).
    W&B only logs on rank 0, so each rank keeps its first ``max_rows_per_rank`` rows (small
    uint8 images) and rank 0 gathers them at the end; the number of inputs left out of the table
    is logged, and every input is in the results folder regardless. Without a ``WandbLogger``
    this callback does nothing.
    """

    def __init__(self, max_rows_per_rank: int = 64) -> None:
        if max_rows_per_rank < 0:
            raise ValueError(f"max_rows_per_rank must be ≥ 0, got {max_rows_per_rank}")
        self.max_rows_per_rank = max_rows_per_rank
        self.rows: list[list[Any]] = []
        self.left_out = 0

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows, self.left_out = [], 0

    def on_predict_batch_end(self, trainer, pl_module, outputs: dict[str, Any], batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        for i, key in enumerate(outputs["key"]):
            if len(self.rows) >= self.max_rows_per_rank:
                self.left_out += 1
                continue
            consensus = None if outputs["consensus"] is None else outputs["consensus"][i]
            self.rows.append([
                key, _name(pl_module, int(outputs["label"][i])), _name(pl_module, int(outputs["target"][i])),
                _name(pl_module, int(outputs["prediction"][i])), float(outputs["source_confidence"][i]),
                float(outputs["target_confidence"][i]), float(outputs["l1"][i]), float(outputs["l2"][i]),
                panel(outputs["original"][i], outputs["counterfactual"][i], consensus),
            ])  # fmt: skip

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.logger, WandbLogger):
            return
        rows, left_out = gather_lists(self.rows), sum(gather_lists([self.left_out]))
        if not trainer.is_global_zero:
            return
        import wandb

        data = [row[:-1] + [wandb.Image(row[-1])] for row in rows]
        trainer.logger.log_table("counterfactuals", columns=COLUMNS, data=data)
        captions = [f"{row[0]}: {row[1]} → {row[2]} (now {row[3]})" for row in rows]
        trainer.logger.log_image("panels", images=[row[-1] for row in rows], caption=captions)
        trainer.logger.log_metrics({"table/rows": len(rows), "table/left_out": left_out})
        if left_out:
            log.info("W&B table holds %d counterfactuals; %d more are only in the results folder", len(rows), left_out)


def _name(pl_module: LightningModule, label: int) -> str:
    name = class_name(getattr(pl_module, "class_names", None), label)
    return str(label) if name is None else f"{label}: {name}"
