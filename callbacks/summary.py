"""``RunSummary``: metrics synced across ranks, counts and failures, written to ``summary.json``."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torchmetrics import MeanMetric, MetricCollection, SumMetric

from ldce.images import quantise
from ldce.metrics import MetricsConfig, MetricSuite, Pairs, build_suite
from ldce.results import store
from ldce.runner import Prediction

log = logging.getLogger(__name__)

MEANS = ("flip_rate", "target_confidence", "l1", "l2")
COUNTS = ("done", "skipped", "failed")
CONFIG_PREFIX = "summary.metrics."


def gather_lists(items: list[Any]) -> list[Any]:
    """Concatenate a list from every rank (a collective: every rank must call it)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    gathered: list[list[Any]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def saved_pairs(prediction: Prediction) -> Pairs:
    """The batch's pairs as the writer saves them: images quantised to 8 bits."""
    result = prediction.result
    return Pairs(
        prediction.keys, quantise(prediction.originals), quantise(result.images), prediction.labels, prediction.targets
    )


class RunSummary(Callback):
    """Counts, the run's own means and the counterfactual metrics over all ranks.

    ``metrics`` (section ``evaluation`` of ``summary.json``, ``evaluation/*`` in W&B) are those of
    :mod:`ldce.metrics`, computed on the counterfactuals as saved (8-bit), so that ``ldce evaluate``
    on the output folder reproduces them; flip rate, closeness and COUT always, the others when
    configured. Section ``metrics`` holds the run's own facts on the float images: flip rate, mean
    target confidence, mean L1/L2 (as in the records). Every rank updates per batch and reaches the
    sync at the end of predict, also a rank that got no input. Rank 0 writes
    ``<output_dir>/summary.json`` and logs the metrics, with the wall seconds of the predict loop
    (rank 0's, metric sync included) and the world size.

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
        self.metrics = MetricCollection({name: MeanMetric() for name in MEANS} | {name: SumMetric() for name in COUNTS})
        self.suite: MetricSuite | None = None
        self.failures: list[dict[str, str]] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = self.metrics.to(pl_module.device)
        self.metrics.reset()
        self.suite = build_suite(self.config, self.classifier, CONFIG_PREFIX).to(pl_module.device)
        self.failures = []
        self.started = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs: Prediction, batch, batch_idx, dataloader_idx=0) -> None:
        device = pl_module.device
        for name, count in (
            ("done", len(outputs.keys)),
            ("skipped", len(outputs.skipped)),
            ("failed", len(outputs.failures)),
        ):
            self.metrics[name].update(torch.tensor(float(count), device=device))
        self.failures.extend(asdict(f) for f in outputs.failures)
        result = outputs.result
        if result is not None:
            flipped = (result.prediction == outputs.targets).float()
            for name, value in (
                ("flip_rate", flipped),
                ("target_confidence", result.target_confidence),
                ("l1", result.l1),
                ("l2", result.l2),
            ):
                self.metrics[name].update(value.to(device))
            self.suite.update(saved_pairs(outputs).to(device))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        values = {name: float(v) for name, v in self.metrics.compute().items()}
        evaluation = self.suite.compute()
        failures = gather_lists(self.failures)
        if not trainer.is_global_zero:
            return
        summary = {
            "counts": {name: int(values[name]) for name in COUNTS},
            "failed": sorted(failures, key=lambda f: f["key"]),
            "metrics": {name: (values[name] if values["done"] else None) for name in MEANS},
            "evaluation": evaluation,
            "evaluation_errors": self.suite.errors,
            "seconds": time.perf_counter() - self.started,
            "world_size": trainer.world_size,
        }
        store.write_json(self.output_dir / "summary.json", summary)
        log.info("summary: %s", summary["counts"] | {k: v for k, v in summary["metrics"].items() if v is not None})
        log.info("evaluation: %s", {k: v for k, v in evaluation.items() if v is not None})
        if trainer.logger is not None and values["done"]:
            logged = {f"summary/{name}": values[name] for name in MEANS + COUNTS}
            trainer.logger.log_metrics(logged | {f"evaluation/{k}": v for k, v in evaluation.items() if v is not None})
