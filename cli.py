"""The ``ldce`` command: ``ldce predict --config configs/<experiment>.yaml`` (LightningCLI) and tools.

``ldce fit`` trains (the demo models, the Flowers linear head); ``ldce shards`` / ``ldce datasets``
write WebDataset shards; ``ldce targets`` writes nearest-other-class target files; ``ldce evaluate``
scores a results folder.

One top-level ``--output_dir`` is followed by the writer, the run summary, the W&B logger and the
saved ``config.yaml``; a repeated run into the same folder resumes instead of failing.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Literal

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from ldce.callbacks.summary import RunSummary
from ldce.callbacks.wandb_table import WandbCounterfactuals
from ldce.callbacks.writer import CounterfactualWriter

TOOLS = {
    "shards": "ldce.datamodules.shards:main",
    "datasets": "ldce.datamodules.datasets:main",
    "targets": "ldce.nearest_targets:main",
    "evaluate": "ldce.evaluate:main",
}
"""``ldce <tool> …`` commands beside LightningCLI's ``fit`` / ``predict`` / …: module:function(argv)."""

TRAINER_DEFAULTS: dict[str, Any] = {"inference_mode": False, "logger": False, "enable_model_summary": False, "devices": "auto"}


class WandbOptions:
    """Weights & Biases run options; the run's files go under ``<output_dir>/wandb``."""

    def __init__(self, mode: Literal["offline", "online", "disabled"] = "offline", project: str = "ldce", name: str | None = None, entity: str | None = None, tags: list[str] | None = None) -> None:
        self.mode, self.project, self.name, self.entity, self.tags = mode, project, name, entity, tags

    def logger(self, save_dir: str) -> WandbLogger | None:
        if self.mode == "disabled":
            return None
        return WandbLogger(save_dir=save_dir, offline=self.mode == "offline", project=self.project, name=self.name, entity=self.entity, tags=self.tags)


class LDCECLI(LightningCLI):
    """LightningCLI with the writer, summary and W&B table always present and one ``output_dir``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--output_dir", type=str, default="outputs", help="Folder for counterfactuals, records, summary, W&B run and config.")
        parser.add_lightning_class_args(CounterfactualWriter, "writer")
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.add_lightning_class_args(WandbCounterfactuals, "wandb_table")
        parser.add_class_arguments(WandbOptions, "wandb")
        for target in ("writer.output_dir", "summary.output_dir", "trainer.default_root_dir"):
            parser.link_arguments("output_dir", target)

    def predict(self, **kwargs: Any) -> None:
        """Predictions go to the callbacks batch by batch; none are kept in memory."""
        self.trainer.predict(**(kwargs | {"return_predictions": False}))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        output_dir = self._get(self.config, "output_dir")
        logger = self._get(self.config_init, "wandb").logger(output_dir)
        return super().instantiate_trainer(**({"logger": logger} if logger else {}), **kwargs)


def run_cli(args: list[str] | None = None, run: bool = True) -> LDCECLI:
    """Build (and by default run) the Lightning CLI on ``args`` (``sys.argv[1:]`` when ``None``)."""
    return LDCECLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ldce`` console command."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] and argv[0] in TOOLS:
        module, function = TOOLS[argv[0]].rsplit(":", 1)
        getattr(importlib.import_module(module), function)(argv[1:])
        return
    run_cli(None if argv == sys.argv[1:] else argv)


if __name__ == "__main__":
    main()
