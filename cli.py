"""The ``ldce`` command: ``ldce predict --config configs/<experiment>.yaml``, ``ldce explain IMAGES``, and tools.

``ldce --help`` lists every command; each has its own ``--help``. LightningCLI drives ``predict`` (and
``explain``, which is ``predict`` over image files) with ``ldce.runner.CounterfactualModule``, and
``fit`` / ``validate`` / ``test`` with any training module. One top-level ``--output_dir`` is followed
by the writer, the run summary, the W&B logger and the saved ``config.yaml`` / ``manifest.json``; a
repeated run into the same folder resumes instead of failing.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from torch import nn

from ldce.callbacks.report import RunReport
from ldce.callbacks.run_config import SaveRunConfig
from ldce.callbacks.summary import RunSummary
from ldce.callbacks.wandb_table import WandbCounterfactuals
from ldce.callbacks.writer import CounterfactualWriter
from ldce.commands import console, front
from ldce.commands.explain import explain_help, predict_args
from ldce.commands.front import TOOLS, TRAINING
from ldce.commands.parser import LDCEParser, check_training_config, current_form, packaged_configs
from ldce.commands.wandb_options import WandbOptions
from ldce.datamodules.images import ImageFilesDataModule
from ldce.datamodules.webdataset import WebDatasetDataModule
from ldce.runner import CounterfactualModule
from ldce.runner.trainer_settings import check_trainer

TRAINER_DEFAULTS: dict[str, Any] = {
    "inference_mode": False,
    "logger": False,
    "enable_model_summary": False,
    "devices": "auto",
}


def explained_classifier(model: CounterfactualModule) -> nn.Module:
    """The classifier the module explains (linked into the run summary for flip rate and COUT)."""
    return model.classifier


def delivered_image_size(data: LightningDataModule) -> int | None:
    """The side of the images a datamodule delivers, where it says (linked into the module's check)."""
    return data.image_size if isinstance(data, (WebDatasetDataModule, ImageFilesDataModule)) else None


def backbone_side(model: CounterfactualModule) -> int:
    """The side of the images the module's backbone works on (linked into ``ldce explain``'s data)."""
    return model.backbone.image_size


class _OutputCLI(LightningCLI):
    """LightningCLI with one ``--output_dir`` and W&B options, shared by training and prediction."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--output_dir", type=str, default="outputs", help="Folder for all of the run's files.")
        parser.add_class_arguments(WandbOptions, "wandb")
        parser.link_arguments("output_dir", "trainer.default_root_dir")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        output_dir = self._get(self.config, "output_dir")
        config = (self.config[self.subcommand] if self.subcommand else self.config).as_dict()
        logger = self._get(self.config_init, "wandb").logger(output_dir, config)
        return super().instantiate_trainer(**({"logger": logger} if logger else {}), **kwargs)


class PredictCLI(_OutputCLI):
    """``ldce predict``: the writer, summary, W&B table and report always present, all under ``--output_dir``."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {"predict": {"model", "dataloaders", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_lightning_class_args(CounterfactualWriter, "writer")
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.add_lightning_class_args(WandbCounterfactuals, "wandb_table")
        parser.add_lightning_class_args(RunReport, "report")  # last: after the records are merged and summarised
        for target in ("writer.output_dir", "summary.output_dir", "report.output_dir"):
            parser.link_arguments("output_dir", target)
        parser.link_arguments("writer.save_steps", "model.record_steps")  # step videos need the steps
        parser.link_arguments("model", "summary.classifier", compute_fn=explained_classifier, apply_on="instantiate")
        self.link_image_size(parser)

    def link_image_size(self, parser: LightningArgumentParser) -> None:
        """Instantiate the data (checking its inputs) before the model loads, and check the size it
        delivers before any work."""
        parser.link_arguments("data", "model.image_size", compute_fn=delivered_image_size, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Refuse trainer settings that ldce predict cannot honour and an output folder that is a file,
        before anything is built."""
        check_trainer(self.config.predict.trainer.as_dict())
        if not str(self.config.predict.output_dir).strip():
            raise console.UserError("--output_dir is empty: name a folder for the results")
        output_dir = Path(self.config.predict.output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            raise console.UserError(f"--output_dir {output_dir} is a file, not a folder")

    def predict(self, **kwargs: Any) -> None:
        """Predictions go to the callbacks batch by batch; none are kept in memory. A run in which
        every input failed is an error."""
        self.trainer.predict(**(kwargs | {"return_predictions": False}))
        summary = next(c for c in self.trainer.callbacks if isinstance(c, RunSummary))
        counts = summary.last_counts
        if counts["explained"] == 0 and counts["failed"] > 0:
            where = summary.output_dir / "summary.json"
            raise console.UserError(f"every input failed ({counts['failed']}); the reasons are in {where}")


class ExplainCLI(PredictCLI):
    """``ldce explain``: ``ldce predict`` over image files, fed at the side the backbone works on."""

    def link_image_size(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model", "data.init_args.image_size", compute_fn=backbone_side, apply_on="instantiate")


class TrainCLI(_OutputCLI):
    """``ldce fit`` / ``validate`` / ``test``: any LightningModule and datamodule by class path."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: LightningCLI.subcommands()[name] for name in TRAINING}


def run_cli(args: list[str], run: bool = True, explain: bool = False) -> LightningCLI:
    """Build (and by default run) ``ldce <subcommand> …`` on ``args`` (the subcommand first);
    ``explain``: ``args`` are those of ``ldce explain`` in ``ldce predict`` form."""
    common = {
        "parser_class": LDCEParser,
        "save_config_kwargs": {"overwrite": True},
        "run": run,
        "subclass_mode_data": True,
    }
    if args[:1] == ["predict"]:
        args = current_form(args)
        defaults = {"trainer_defaults": TRAINER_DEFAULTS, "save_config_callback": SaveRunConfig}
        return (ExplainCLI if explain else PredictCLI)(
            CounterfactualModule,
            LightningDataModule,
            args=args if run else args[1:],
            auto_configure_optimizers=False,
            **defaults,
            **common,
        )
    trainer = TRAINER_DEFAULTS | {"enable_model_summary": True}
    return TrainCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        trainer_defaults=trainer,
        args=args if run else args[1:],
        **common,
    )


def _dispatch(command: str, args: list[str], quiet: bool) -> None:
    """Run ``ldce <command> <args>``; ``quiet`` (``-q``) hides progress bars unless a config asks for them."""
    if command in TOOLS:
        module, function = TOOLS[command].rsplit(":", 1)
        status = getattr(importlib.import_module(module), function)(args)
        if status:
            sys.exit(status)
        return
    if command == "explain" and {"-h", "--help"} & set(args):
        print(explain_help())
        return
    args = predict_args(packaged_configs(args)) if command == "explain" else [command, *packaged_configs(args)]
    if args[0] in TRAINING:
        check_training_config(args)
    hidden = ["--trainer.enable_progress_bar=false"] + (["--model.step_progress=false"] if args[0] == "predict" else [])
    run_cli(args[:1] + (hidden if quiet else []) + args[1:], explain=command == "explain")


def run(command: str, args: list[str], level: str) -> None:
    """Run ``ldce <command> <args>`` (a known command) at log level ``level``; a user error ends the process
    with one line and status 2."""
    console.configure(level)  # again: importing Lightning has set its own loggers' levels
    try:
        _dispatch(command, args, quiet=level == "WARNING")
    except Exception as error:
        if not console.is_user_error(error):
            raise
        console.fail(command, error, level)


def main(argv: list[str] | None = None) -> None:
    """``python -m ldce.cli``: the ``ldce`` command."""
    run(*front.parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
