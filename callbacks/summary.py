"""``RunSummary``: counts, failures and metrics synced across ranks, written to ``summary.json``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torchmetrics import MetricCollection, SumMetric

from ldce.datamodules.batch import Failure
from ldce.images import quantise
from ldce.metrics import MetricsConfig, MetricSuite, Pairs, build_suite
from ldce.metrics.gather import gather_lists
from ldce.results import store
from ldce.results.record import Record, run_means
from ldce.runner import Prediction

log = logging.getLogger(__name__)

SYNCED = ("explained", "skipped", "failed", "damaged_shards")
CONFIG_PREFIX = "summary.metrics."


def saved_pairs(prediction: Prediction) -> Pairs:
    """The batch's pairs as the writer saves them: images quantised to 8 bits."""
    result = prediction.result
    return Pairs(
        prediction.keys, quantise(prediction.originals), quantise(result.images), prediction.labels, prediction.targets
    )


def batch_counts(prediction: Prediction) -> dict[str, int]:
    """This batch's inputs by outcome; a damaged shard's rest counts as a damaged shard, not an input."""
    damaged = sum(f.damaged_shard for f in prediction.failures)
    return {
        "explained": len(prediction.keys),
        "skipped": len(prediction.skipped),
        "failed": len(prediction.failures) - damaged,
        "damaged_shards": damaged,
    }


def outcome_counts(synced: dict[str, int], explained: list[str], latest: dict[str, Record]) -> dict[str, int]:
    """This run's counts: of the inputs it explained, those whose record says done (a write that failed
    made a failure record instead), the renamed duplicates among them, and the synced counts."""
    done = [latest[key] for key in explained if key in latest and latest[key].done]
    return {
        "done": len(done),
        "skipped": synced["skipped"],
        "failed": synced["failed"] + synced["explained"] - len(done),
        "damaged_shards": synced["damaged_shards"],
        "renamed_duplicates": sum(record.original_key is not None for record in done),
        "already_target": sum(bool(record.already_target) for record in done),
    }


class RunSummary(Callback):
    """Counts, the folder's means and the counterfactual metrics over all ranks, in ``summary.json``.

    ``counts``: this run's inputs — ``done + skipped + failed`` is every input it saw, an input whose
    files could not be written counting as failed — plus the shards that broke part-way, the inputs
    renamed because their key occurs twice and the done inputs the classifier already called their
    target (they do not count in the flip rate). ``folder``: the folder's done and failed inputs after
    this run (a resumed run's ``counts`` cover only itself; damaged shards are in ``counts``, as every run
    reads a damaged shard again).
    ``metrics``: flip rate, mean target confidence and L1/L2 over the folder's done records.
    ``evaluation``: the metrics of :mod:`ldce.metrics` over the counterfactuals this run made, as saved
    (8-bit); ``evaluation_scope`` says so. A run that made none keeps the evaluation of the summary it
    replaces (``ldce evaluate`` scores the whole folder). Every rank updates per batch and reaches the
    sync at the end of predict, also a rank that got no input; rank 0 writes the file.

    Args:
        output_dir: the results folder.
        metrics: which counterfactual metrics to compute beyond flip rate, closeness and COUT.
        classifier: the explained classifier (for flip rate and COUT); ``ldce predict`` passes the
            model's own.
    """

    def __init__(
        self, output_dir: str = "outputs", metrics: MetricsConfig | None = None, classifier: nn.Module | None = None
    ) -> None:
        self.output_dir = Path(output_dir)
        self.config = metrics or MetricsConfig()
        self.classifier = classifier
        self.counts = MetricCollection({name: SumMetric() for name in SYNCED})
        self.suite: MetricSuite | None = None
        self.failures: list[dict[str, Any]] = []
        self.explained: list[str] = []
        self.last_counts: dict[str, int] = dict.fromkeys(SYNCED, 0)
        """The last run's synced counts (every rank): explained, skipped, failed, damaged_shards."""

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.counts = self.counts.to(pl_module.device)
        self.counts.reset()
        self.suite = build_suite(self.config, self.classifier, CONFIG_PREFIX).to(pl_module.device)
        self.failures, self.explained = [], []
        self.started = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs: Prediction, batch, batch_idx, dataloader_idx=0) -> None:
        for name, count in batch_counts(outputs).items():
            self.counts[name].update(torch.tensor(float(count), device=pl_module.device))
        self.failures.extend(asdict(f) for f in outputs.failures)
        self.explained.extend(outputs.keys)
        if outputs.result is not None:
            self.suite.update(saved_pairs(outputs).to(pl_module.device))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synced = self.last_counts = {name: int(value) for name, value in self.counts.compute().items()}
        evaluation = self.suite.compute()
        failures = gather_lists(self.failures)  # collectives: after them, every rank's records are written
        explained = gather_lists(self.explained)
        if trainer.is_global_zero:
            self._write(trainer, synced, explained, evaluation, failures)

    def _write(self, trainer: Trainer, synced: dict, explained: list[str], evaluation: dict, failures: list) -> None:
        latest = store.latest_records(store.iter_records(self.output_dir))
        counts = outcome_counts(synced, explained, latest)
        done = [r for r in latest.values() if r.done]
        failed = [r for r in latest.values() if not r.done and not r.damaged_shard]
        write_failures = [asdict(Failure(r.key, r.reason, r.shard)) for k in explained if not (r := latest[k]).done]
        summary = {
            "counts": counts,
            "folder": {"done": len(done), "failed": len(failed)},
            "failed": sorted(failures + write_failures, key=lambda f: f["key"]),
            "metrics": run_means(done),
            **self._evaluation(counts["done"], len(done), evaluation),
            "seconds": time.perf_counter() - self.started,
            "world_size": trainer.world_size,
        }
        store.write_json(self.output_dir / store.SUMMARY, summary)
        log.info("summary: %s", counts | {k: v for k, v in summary["metrics"].items() if v is not None})
        log.info("evaluation: %s", {k: v for k, v in summary["evaluation"].items() if v is not None})
        written = [name for name in ("grid.png", "records.jsonl", store.SUMMARY) if (self.output_dir / name).is_file()]
        log.info("results in %s (%s)", self.output_dir.resolve(), ", ".join(written))
        if trainer.logger is not None and counts["done"]:
            logged = {f"summary/{name}": value for name, value in (counts | summary["metrics"]).items()}
            trainer.logger.log_metrics(logged | {f"evaluation/{k}": v for k, v in evaluation.items() if v is not None})

    def _evaluation(self, made: int, in_folder: int, evaluation: dict) -> dict[str, Any]:
        """This run's evaluation and its scope — or, when it made nothing, the one of the summary it replaces."""
        previous = self.output_dir / store.SUMMARY
        if made == 0 and previous.is_file():
            kept = json.loads(previous.read_text())
            if "evaluation" in kept:
                return {
                    key: kept[key] for key in ("evaluation", "evaluation_errors", "evaluation_caveats") if key in kept
                } | {"evaluation_scope": kept.get("evaluation_scope", "an earlier run") + " (kept: this run made none)"}
        scope = f"the {made} counterfactuals this run made, of {in_folder} in the folder"
        caveats = self.suite.caveats(evaluation, made)
        for caveat in caveats.values():
            log.warning("%s", caveat)
        return {
            "evaluation": evaluation,
            "evaluation_errors": self.suite.problems(evaluation, made),
            "evaluation_caveats": caveats,
            "evaluation_scope": scope,
        }
