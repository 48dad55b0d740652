"""``RunSummary``: metrics synced across ranks, counts and failures, written to ``summary.json``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics import MeanMetric, MetricCollection, SumMetric

from ldce.callbacks import store
from ldce.metrics import MetricsConfig, MetricSuite, Pairs, build_suite, quantise

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


def saved_pairs(outputs: dict[str, Any]) -> Pairs:
    """The batch's pairs as the writer saves them: images quantised to 8 bits (``quantise``)."""
    return Pairs(list(outputs["key"]), quantise(outputs["original"]), quantise(outputs["counterfactual"]), outputs["label"], outputs["target"])


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
    """

    def __init__(self, output_dir: str = "outputs", metrics: MetricsConfig | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.config = metrics or MetricsConfig()
        self.metrics = MetricCollection({name: MeanMetric() for name in MEANS} | {name: SumMetric() for name in COUNTS})
        self.suite: MetricSuite | None = None
        self.failures: list[dict[str, str]] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = self.metrics.to(pl_module.device)
        self.metrics.reset()
        self.suite = build_suite(self.config, getattr(pl_module, "classifier", None), CONFIG_PREFIX).to(pl_module.device)
        self.failures = []
        self.started = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs: dict[str, Any], batch, batch_idx, dataloader_idx=0) -> None:
        device = pl_module.device
        count = lambda n: torch.tensor(float(n), device=device)  # noqa: E731
        self.metrics["done"].update(count(len(outputs["key"])))
        self.metrics["skipped"].update(count(len(outputs["skipped"])))
        self.metrics["failed"].update(count(len(outputs["failed"])))
        self.failures.extend(outputs["failed"])
        if outputs["key"]:
            flipped = (outputs["prediction"] == outputs["target"]).float()
            for name, value in (("flip_rate", flipped), ("target_confidence", outputs["target_confidence"]), ("l1", outputs["l1"]), ("l2", outputs["l2"])):
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
