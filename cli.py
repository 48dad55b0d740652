"""The ``ldce`` command: ``ldce predict --config configs/<experiment>.yaml`` (LightningCLI) and tools.

``ldce predict`` explains the inputs of a datamodule with ``ldce.runner.CounterfactualModule``;
``ldce fit`` / ``validate`` / ``test`` train and check the demo models and the Flowers linear head;
``ldce shards`` / ``ldce datasets`` write WebDataset shards; ``ldce targets`` writes
nearest-other-class target files; ``ldce evaluate`` scores a results folder.

One top-level ``--output_dir`` is followed by the writer, the run summary, the W&B logger and the
saved ``config.yaml`` / ``manifest.json``; a repeated run into the same folder resumes instead of failing.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from ldce.callbacks.run_config import SaveRunConfig
from ldce.callbacks.summary import RunSummary
from ldce.callbacks.wandb_table import WandbCounterfactuals
from ldce.callbacks.writer import CounterfactualWriter
from ldce.compat.legacy import migrate_argv, migrate_config
from ldce.datamodules.webdataset import WebDatasetDataModule
from ldce.runner import CounterfactualModule
from ldce.runner.trainer_settings import check_trainer

log = logging.getLogger("ldce")

TOOLS = {
    "shards": "ldce.datamodules.shards:main",
    "datasets": "ldce.datamodules.datasets:main",
    "targets": "ldce.datamodules.nearest_targets:main",
    "evaluate": "ldce.results.evaluate:main",
}
"""``ldce <tool> …`` commands beside LightningCLI's subcommands: module:function(argv)."""
TRAINING = ("fit", "validate", "test")

TRAINER_DEFAULTS: dict[str, Any] = {
    "inference_mode": False,
    "logger": False,
    "enable_model_summary": False,
    "devices": "auto",
}


class WandbOptions:
    """Weights & Biases run options; the run's files go under ``<output_dir>/wandb``.

    Args:
        mode: ``offline`` (files only), ``online`` (sync) or ``disabled``.
        project: the W&B project.
        name: the run's name.
        entity: the W&B entity (user or team).
        tags: the run's tags.
    """

    def __init__(
        self,
        mode: Literal["offline", "online", "disabled"] = "offline",
        project: str = "ldce",
        name: str | None = None,
        entity: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        self.mode, self.project, self.name, self.entity, self.tags = mode, project, name, entity, tags

    def logger(self, save_dir: str) -> WandbLogger | None:
        if self.mode == "disabled":
            return None
        offline = self.mode == "offline"
        return WandbLogger(
            save_dir=save_dir, offline=offline, project=self.project, name=self.name, entity=self.entity, tags=self.tags
        )


def explained_classifier(model: CounterfactualModule) -> nn.Module:
    """The classifier the module explains (linked into the run summary for flip rate and COUT)."""
    return model.classifier


def delivered_image_size(data: LightningDataModule) -> int | None:
    """The side of the images a datamodule delivers, where it says (linked into the module's check)."""
    return data.image_size if isinstance(data, WebDatasetDataModule) else None


class _OutputCLI(LightningCLI):
    """LightningCLI with one ``--output_dir`` and W&B options, shared by training and prediction."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--output_dir", type=str, default="outputs", help="Folder for all of the run's files.")
        parser.add_class_arguments(WandbOptions, "wandb")
        parser.link_arguments("output_dir", "trainer.default_root_dir")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        output_dir = self._get(self.config, "output_dir")
        logger = self._get(self.config_init, "wandb").logger(output_dir)
        return super().instantiate_trainer(**({"logger": logger} if logger else {}), **kwargs)


class PredictCLI(_OutputCLI):
    """``ldce predict``: the writer, summary and W&B table always present, all under ``--output_dir``."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {"predict": {"model", "dataloaders", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_lightning_class_args(CounterfactualWriter, "writer")
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.add_lightning_class_args(WandbCounterfactuals, "wandb_table")
        for target in ("writer.output_dir", "summary.output_dir"):
            parser.link_arguments("output_dir", target)
        parser.link_arguments("writer.save_steps", "model.record_steps")  # step videos need the steps
        parser.link_arguments("model", "summary.classifier", compute_fn=explained_classifier, apply_on="instantiate")
        # instantiates the data (checking its shards) before the model loads, and the size before any work
        parser.link_arguments("data", "model.image_size", compute_fn=delivered_image_size, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Refuse trainer settings that ldce predict cannot honour, before anything is built."""
        check_trainer(self.config.predict.trainer.as_dict())

    def predict(self, **kwargs: Any) -> None:
        """Predictions go to the callbacks batch by batch; none are kept in memory."""
        self.trainer.predict(**(kwargs | {"return_predictions": False}))


class TrainCLI(_OutputCLI):
    """``ldce fit`` / ``validate`` / ``test``: any LightningModule and datamodule by class path."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: LightningCLI.subcommands()[name] for name in TRAINING}


def run_cli(args: list[str], run: bool = True) -> LightningCLI:
    """Build (and by default run) ``ldce <subcommand> …`` on ``args`` (the subcommand first)."""
    if args[:1] == ["predict"]:
        args = _current_form(args)
        return PredictCLI(
            CounterfactualModule,
            LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True},
            args=args if run else args[1:],
            run=run,
            auto_configure_optimizers=False,
        )
    return TrainCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS | {"enable_model_summary": True},
        save_config_kwargs={"overwrite": True},
        args=args if run else args[1:],
        run=run,
    )


def _current_form(args: list[str]) -> list[str]:
    """``args`` with ldce 0.1 configs and flags rewritten (see ``ldce.compat.legacy``), warning once."""
    split = [part for arg in args for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])]
    args, changes = migrate_argv(split)
    for i in range(len(args) - 1):
        if args[i] in ("--config", "-c") and Path(args[i + 1]).is_file():
            config, found = migrate_config(yaml.safe_load(Path(args[i + 1]).read_text()) or {})
            if found:
                changes += [f"{args[i + 1]}: {change}" for change in found]
                args[i + 1] = yaml.safe_dump(config, sort_keys=False)
    if changes:
        log.warning(
            "ldce 0.1 keys read in their new places (update the files; support ends with ldce 0.3): %s",
            "; ".join(changes),
        )
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ldce`` console command."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] and argv[0] in TOOLS:
        module, function = TOOLS[argv[0]].rsplit(":", 1)
        getattr(importlib.import_module(module), function)(argv[1:])
        return
    # ``args`` is what LightningCLI parses; sys.argv stays whole for the processes DDP launches
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
    run_cli(argv)


if __name__ == "__main__":
    main()
