"""``ldce evaluate --results <output_dir>``: the counterfactual metrics of a results folder, on one or many processes.

    ldce evaluate --results runs/x                                  # the run's own metrics config
    ldce evaluate --results runs/x --config metrics.yaml            # e.g. {metrics: {lpips_weights: …}}
    ldce evaluate --results runs/x --devices 4 --strategy ddp       # Lightning launches 4 processes

It reads the newest record of every key from all ranks' record parts (``status: done``, files
present), the saved original and counterfactual PNGs, and the folder's ``manifest.json``: the
explained classifier and, unless ``--metrics`` / ``--config`` give one, the run's metrics config.
Pairs are split over ranks by position in key order; every rank syncs every metric, also one without
pairs, so the result does not depend on the number of processes. Rank 0 logs a table and writes
``<output_dir>/metrics.json``: ``pairs`` (how many), ``metrics`` (the records' flip rate, target
confidence and L1/L2, as in ``summary.json``), ``evaluation`` (the metrics of :mod:`ldce.metrics` on
the saved 8-bit images) and ``evaluation_errors``.

For a run that explained every input in one go, ``metrics`` and ``evaluation`` equal those of its
``summary.json`` up to float round-off (the run's metrics see the same 8-bit images); a resumed run's
summary covers only what its last invocation computed, while ``ldce evaluate`` scores the whole folder.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ldce.images import read_image
from ldce.metrics import MetricsConfig, MetricSuite, Pairs, build_suite
from ldce.results import store
from ldce.results.manifest import read_manifest
from ldce.results.record import Record

log = logging.getLogger(__name__)


class RecordPairs(Dataset):
    """One pair per record, as :class:`Pairs` of one: the saved original and counterfactual ``(1, 3, H, W)``."""

    def __init__(self, results: Path, records: list[Record]) -> None:
        self.results, self.records = results, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Pairs:
        record = self.records[index]
        original, counterfactual = (
            read_image(self.results / path)[None] for path in (record.files.original, record.files.counterfactual)
        )
        classes = (torch.tensor([value], dtype=torch.int64) for value in (record.source, record.target))
        return Pairs([record.key], original, counterfactual, *classes)


def no_pairs() -> Pairs:
    empty = torch.zeros(0, 3, 1, 1)
    return Pairs([], empty, empty, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))


class Evaluator(LightningModule):
    """Feeds this rank's share of the pairs to ``suite``; ``values`` holds the synced result after predict."""

    def __init__(
        self, suite: MetricSuite, results: Path, records: list[Record], batch_size: int, num_workers: int
    ) -> None:
        super().__init__()
        self.suite = suite
        self.results, self.records = results, records
        self.batch_size, self.num_workers = batch_size, num_workers
        self.values: dict[str, float | None] = {}

    def predict_dataloader(self) -> DataLoader:
        share = self.records[self.global_rank :: self.trainer.world_size]
        if not share:  # one empty batch: Lightning skips the hooks of a loop without batches, and every rank must sync
            return DataLoader([no_pairs()], batch_size=None)
        return DataLoader(
            RecordPairs(self.results, share),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=Pairs.cat,
        )

    def predict_step(self, batch: Pairs, batch_idx: int = 0) -> int:
        """Add the batch to the metrics; returns how many pairs it held."""
        self.suite.update(batch)
        return len(batch.keys)

    def on_predict_end(self) -> None:
        self.values = self.suite.compute()


def run_means(records: list[Record]) -> dict[str, float | None]:
    """Means over the records of the run's own facts: ``flipped`` (as flip_rate), ``target_confidence``,
    ``l1``, ``l2``."""
    values = {
        "flip_rate": [float(r.flipped) for r in records],
        "target_confidence": [r.target_confidence for r in records],
        "l1": [r.l1 for r in records],
        "l2": [r.l2 for r in records],
    }
    return {name: math.fsum(v) / len(v) if v else None for name, v in values.items()}


def _instantiate(value: Any, kind: Any) -> Any:
    """``value`` (a config dict, e.g. ``{class_path, init_args}``) parsed and instantiated as type ``kind``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--value", type=kind)
    return parser.instantiate(parser.parse_object({"value": value})).value


def run_settings(results: Path, metrics: MetricsConfig | None) -> tuple[nn.Module | None, MetricsConfig | None]:
    """The explained classifier and the metrics config of the folder's manifest (``metrics`` wins if given)."""
    manifest = read_manifest(results)
    if manifest is None or manifest.classifier is None:
        log.warning("%s has no manifest naming the explained classifier: flip rate and COUT are skipped", results)
    classifier_config = None if manifest is None else manifest.classifier
    classifier = None if classifier_config is None else _instantiate(classifier_config, nn.Module | None)
    if metrics is None and manifest is not None:
        metrics = _instantiate(manifest.metrics, MetricsConfig | None)
    return classifier, metrics


def table(result: dict[str, Any]) -> str:
    """The metrics as aligned ``name  value`` lines."""
    rows = [
        (f"{section}/{name}", value) for section in ("metrics", "evaluation") for name, value in result[section].items()
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {'n/a' if value is None else f'{value:.6g}'}" for name, value in rows]
    lines += list(result["evaluation_errors"].values())
    return "\n".join([f"{result['pairs']} pairs", *lines])


def evaluate(
    results: str,
    metrics: MetricsConfig | None = None,
    batch_size: PositiveInt = 16,
    num_workers: NonNegativeInt = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: PositiveInt = 1,
    strategy: str = "auto",
) -> dict[str, Any] | None:
    """Compute the metrics of the results folder ``results``; returns ``metrics.json``'s content on rank 0.

    Args:
        results: an ``ldce predict`` output folder.
        metrics: the metrics to compute; default: the run's ``summary.metrics``.
        batch_size: pairs per batch and process.
        num_workers: image-reading workers per process.
        accelerator: Lightning accelerator (cpu, gpu, auto).
        devices: processes per node (Lightning ``devices``).
        num_nodes: nodes.
        strategy: Lightning strategy (ddp for several processes).
    """
    folder = Path(results)
    records = store.done_records(folder, ("original", "counterfactual"))
    classifier, config = run_settings(folder, metrics)
    suite = build_suite(config, classifier, "metrics.")
    evaluator = Evaluator(suite, folder, records, int(batch_size), int(num_workers))
    trainer = Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=str(folder),
    )
    trainer.predict(evaluator, return_predictions=False)
    if not trainer.is_global_zero:
        return None
    result = {
        "pairs": len(records),
        "metrics": run_means(records),
        "evaluation": evaluator.values,
        "evaluation_errors": suite.errors,
    }
    store.write_json(folder / "metrics.json", result)
    log.info("metrics of %s:\n%s", folder, table(result))
    return result


def main(argv: list[str]) -> None:
    """``ldce evaluate …``: parse ``argv`` (``--config`` reads a YAML of these options) and evaluate."""
    parser = ArgumentParser(prog="ldce evaluate", description="Counterfactual metrics of an ldce results folder.")
    parser.add_argument("--config", action="config")
    parser.add_function_arguments(evaluate, as_positional=False)
    options = parser.instantiate(parser.parse_args(argv))
    evaluate(**{name: value for name, value in vars(options).items() if name != "config"})
