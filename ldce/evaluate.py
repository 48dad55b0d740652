"""``ldce evaluate --results <output_dir>``: the counterfactual metrics of a results folder, on one or many processes.

    ldce evaluate --results runs/x                                  # the run's own metrics config
    ldce evaluate --results runs/x --config metrics.yaml            # e.g. {metrics: {lpips_weights: …}}
    ldce evaluate --results runs/x --devices 4 --strategy ddp       # Lightning launches 4 processes

It reads the newest record of every key from all ranks' record parts (``status: done``, files present),
the saved original and counterfactual PNGs, and the run's ``config.yaml``: the explained classifier
(``model.init_args.classifier``) and, unless ``--metrics`` / ``--config`` give one, the run's
``summary.metrics``. Pairs are split over ranks by position in key order; every rank syncs every
metric, also one without pairs, so the result does not depend on the number of processes. Rank 0
logs a table and writes ``<output_dir>/metrics.json``: ``pairs`` (how many), ``metrics`` (the
records' flip rate, target confidence and L1/L2, as in ``summary.json``), ``evaluation`` (the
metrics of :mod:`ldce.metrics` on the saved 8-bit images) and ``evaluation_errors``.

For a run that explained every input in one go, ``metrics`` and ``evaluation`` equal those of its
``summary.json`` up to float round-off (the run's metrics see the same 8-bit images); a resumed run's
summary covers only what its last invocation computed, while ``ldce evaluate`` scores the whole folder.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from jsonargparse import ArgumentParser
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ldce.callbacks import store
from ldce.metrics import MetricsConfig, MetricSuite, Pairs, build_suite
from ldce.visualize import read_image

log = logging.getLogger(__name__)

class RecordPairs(Dataset):
    """One item per record: ``key``, ``original`` and ``counterfactual`` ``(3, H, W)``, ``source``, ``target``."""

    def __init__(self, results: Path, records: list[dict[str, Any]]) -> None:
        self.results, self.records = results, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        images = {name: read_image(self.results / record["files"][name]) for name in ("original", "counterfactual")}
        return {"key": record["key"], "source": int(record["source"]), "target": int(record["target"]), **images}


def collate(items: list[dict[str, Any]]) -> Pairs:
    stack = lambda name: torch.stack([item[name] for item in items])  # noqa: E731
    classes = lambda name: torch.tensor([item[name] for item in items], dtype=torch.int64)  # noqa: E731
    return Pairs([item["key"] for item in items], stack("original"), stack("counterfactual"), classes("source"), classes("target"))


def no_pairs() -> Pairs:
    empty = torch.zeros(0, 3, 1, 1)
    return Pairs([], empty, empty, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))


class Evaluator(LightningModule):
    """Feeds this rank's share of the pairs to ``suite``; ``values`` holds the synced result after predict."""

    def __init__(self, suite: MetricSuite, results: Path, records: list[dict[str, Any]], batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.suite = suite
        self.results, self.records = results, records
        self.batch_size, self.num_workers = batch_size, num_workers
        self.values: dict[str, float | None] = {}

    def predict_dataloader(self) -> DataLoader:
        share = self.records[self.global_rank :: self.trainer.world_size]
        if not share:  # one empty batch: Lightning skips the hooks of a loop without batches, and every rank must sync
            return DataLoader([no_pairs()], batch_size=None)
        return DataLoader(RecordPairs(self.results, share), batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate)

    def predict_step(self, batch: Pairs, batch_idx: int = 0) -> int:
        """Add the batch to the metrics; returns how many pairs it held."""
        self.suite.update(batch)
        return len(batch.keys)

    def on_predict_end(self) -> None:
        self.values = self.suite.compute()


def run_means(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Means over the records of the run's own facts: ``flipped`` (as flip_rate), ``target_confidence``, ``l1``, ``l2``."""
    fields = {"flip_rate": "flipped", "target_confidence": "target_confidence", "l1": "l1", "l2": "l2"}
    if not records:
        return dict.fromkeys(fields)
    return {name: math.fsum(float(r[field]) for r in records) / len(records) for name, field in fields.items()}


def _instantiate(value: Any, kind: Any) -> Any:
    """``value`` (a config dict, e.g. ``{class_path, init_args}``) parsed and instantiated as type ``kind``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--value", type=kind)
    return parser.instantiate(parser.parse_object({"value": value})).value


def run_settings(results: Path, metrics: MetricsConfig | None) -> tuple[nn.Module | None, MetricsConfig | None]:
    """The explained classifier and the metrics config of the run's ``config.yaml`` (``metrics`` wins if given)."""
    path = results / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    if not config:
        log.warning("%s not found: no explained classifier (flip rate and COUT are skipped)", path)
    classifier_config = ((config.get("model") or {}).get("init_args") or {}).get("classifier")
    classifier = None if classifier_config is None else _instantiate(classifier_config, Optional[nn.Module])
    if metrics is None:
        metrics = _instantiate((config.get("summary") or {}).get("metrics"), Optional[MetricsConfig])
    return classifier, metrics


def table(result: dict[str, Any]) -> str:
    """The metrics as aligned ``name  value`` lines."""
    rows = [(f"{section}/{name}", value) for section in ("metrics", "evaluation") for name, value in result[section].items()]
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
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, logger=False,
        enable_checkpointing=False, enable_model_summary=False, use_distributed_sampler=False, default_root_dir=str(folder),
    )  # fmt: skip
    trainer.predict(evaluator, return_predictions=False)
    if not trainer.is_global_zero:
        return None
    result = {"pairs": len(records), "metrics": run_means(records), "evaluation": evaluator.values, "evaluation_errors": suite.errors}
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
