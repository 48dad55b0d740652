"""``ExportWeights``: at the end of training, rank 0 saves the trained model in its shipping format."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


class ExportWeights(Callback):
    """Call ``pl_module.export(path)`` once fitting ends (the module decides the file format)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            pl_module.export(self.path)
            log.info("exported %s to %s", type(pl_module).__name__, self.path)
