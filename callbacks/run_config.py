"""``SaveRunConfig``: ``config.yaml`` (Lightning's) plus the results folder's ``manifest.json``, after
refusing to resume into a folder that was written with other settings."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

import ldce
from ldce.backbones.speedups import Speedups
from ldce.classifiers.names import read_class_names
from ldce.method.config import LDCEConfig
from ldce.results import store
from ldce.results.fingerprint import differences, fingerprint
from ldce.results.manifest import RunManifest, read_manifest

log = logging.getLogger(__name__)

MODEL_FIELDS = (
    "backbone",
    "classifier",
    "method",
    "seed",
    "targets",
    "extra_terms",
    "micro_batch_size",
    "speedups",
    "distance_features",
)
DATA_FIELDS = ("resize_mode",)
"""The data's image size is the backbone's (checked before any work), so the backbone fingerprints it."""


def default_settings() -> dict[str, Any]:
    """The fingerprint of the settings that later versions may add to, at their defaults."""
    defaults = {"model.method": dataclasses.asdict(LDCEConfig()), "model.speedups": dataclasses.asdict(Speedups())}
    return fingerprint(defaults | {"model.distance_features": None})


class SettingsChanged(ValueError):
    """A results folder that holds counterfactuals of other settings; the message names each difference."""


def run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What decides a counterfactual in an ``ldce predict`` config, by the flag that sets it."""
    data, model = config["data"].get("init_args", config["data"]), config["model"]
    region = {"model.region": model["region"], "model.segmenter": model["segmenter"]}
    return (
        {f"model.{name}": model[name] for name in MODEL_FIELDS}
        | (region if model["region"]["source"] != "none" else {})  # folders of runs without a region resume
        | {f"data.{name}": data.get(name) for name in DATA_FIELDS}
        | {"trainer.precision": config["trainer"]["precision"]}
    )


class SaveRunConfig(SaveConfigCallback):
    """Check the folder, then write the full ``ldce predict`` config and (rank 0) :class:`RunManifest`:
    the explained classifier's config and the metrics config (for ``ldce evaluate``) and the run's
    fingerprint (for the next resume)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.fingerprint = fingerprint(run_settings(self.config.as_dict()))
        self._check_folder(Path(self.config.output_dir))
        super().setup(trainer, pl_module, stage)

    def _check_folder(self, folder: Path) -> None:
        recorded = read_manifest(folder)
        if self.config.writer.overwrite or not store.done_keys(folder):
            return
        if recorded is None or recorded.fingerprint is None:
            log.warning("%s was written by ldce 0.1: its settings cannot be compared with this run's", folder)
            return
        changed = differences(recorded.fingerprint, self.fingerprint, default_settings())
        if changed:
            shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise SettingsChanged(
                f"{folder} holds counterfactuals made with other settings ({shown}): use another --output_dir, "
                "or --writer.overwrite true to explain every input again"
            )

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        model, summary = self.config.model, self.config.summary
        metrics = summary.metrics
        manifest = RunManifest(
            classifier=model.classifier.as_dict(),
            metrics=None if metrics is None else metrics.as_dict(),
            class_names=read_class_names(model.class_names),
            ldce_version=ldce.__version__,
            fingerprint=self.fingerprint,
        )
        manifest.write(Path(self.config.output_dir))
