"""``SaveRunConfig``: ``config.yaml`` (Lightning's) plus the results folder's ``manifest.json``."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

import ldce
from ldce.classifiers.names import read_class_names
from ldce.results.manifest import RunManifest


class SaveRunConfig(SaveConfigCallback):
    """Write the full ``ldce predict`` config and, on rank 0, :class:`RunManifest` into ``output_dir``:
    the explained classifier's config and the metrics config, for ``ldce evaluate``."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        model, summary = self.config.model, self.config.summary
        metrics = summary.metrics
        manifest = RunManifest(
            classifier=model.classifier.as_dict(),
            metrics=None if metrics is None else metrics.as_dict(),
            class_names=read_class_names(model.class_names),
            ldce_version=ldce.__version__,
        )
        manifest.write(Path(self.config.output_dir))
