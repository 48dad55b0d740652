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
the saved 8-bit images), ``evaluation_errors`` and ``evaluation_caveats`` (Fréchet distances over too
few pairs for full-rank covariances: biased upward).

For a run that explained every input in one go, ``metrics`` and ``evaluation`` equal those of its
``summary.json`` up to float round-off (the run's metrics see the same 8-bit images); a resumed run's
summary covers only what its last invocation computed, while ``ldce evaluate`` scores the whole folder.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
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
from ldce.metrics.gather import gather_lists
from ldce.results import store
from ldce.results.manifest import read_manifest
from ldce.results.record import Record, run_means
from ldce.results.store import Unreadable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """Pairs read from a results folder, and the files among them that could not be read."""

    pairs: Pairs
    unreadable: list[Unreadable]

    @staticmethod
    def cat(parts: list[Loaded]) -> Loaded:
        pairs = [p.pairs for p in parts if p.pairs.keys] or [no_pairs()]
        return Loaded(Pairs.cat(pairs), [u for p in parts for u in p.unreadable])


def no_pairs() -> Pairs:
    empty = torch.zeros(0, 3, 1, 1)
    return Pairs([], empty, empty, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))


class RecordPairs(Dataset):
    """One item per record: its saved original and counterfactual as :class:`Pairs` of one
    (``(1, 3, H, W)``), or no pair and the file that could not be read."""

    def __init__(self, results: Path, records: list[Record]) -> None:
        self.results, self.records = results, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Loaded:
        record = self.records[index]
        images = []
        for path in (record.files.original, record.files.counterfactual):
            try:
                images.append(read_image(self.results / path)[None])
            except (OSError, ValueError) as error:
                log.warning("%s: skipping %r, its image cannot be read (%s)", path, record.key, error)
                return Loaded(no_pairs(), [Unreadable(path, f"{type(error).__name__}: {error}", record.key)])
        classes = (torch.tensor([value], dtype=torch.int64) for value in (record.source, record.target))
        return Loaded(Pairs([record.key], *images, *classes), [])


class Evaluator(LightningModule):
    """Feeds this rank's share of the pairs to ``suite``; after predict, ``values`` holds the synced
    result and ``unreadable`` every rank's unreadable files."""

    def __init__(
        self, suite: MetricSuite, results: Path, records: list[Record], batch_size: int, num_workers: int
    ) -> None:
        super().__init__()
        self.suite = suite
        self.results, self.records = results, records
        self.batch_size, self.num_workers = batch_size, num_workers
        self.values: dict[str, float | None] = {}
        self.unreadable: list[Unreadable] = []

    def predict_dataloader(self) -> DataLoader:
        share = self.records[self.global_rank :: self.trainer.world_size]
        if not share:  # one empty batch: Lightning skips the hooks of a loop without batches, and every rank must sync
            return DataLoader([Loaded(no_pairs(), [])], batch_size=None)
        pairs = RecordPairs(self.results, share)
        return DataLoader(pairs, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=Loaded.cat)

    def transfer_batch_to_device(self, batch: Loaded, device: torch.device, dataloader_idx: int) -> Loaded:
        return replace(batch, pairs=batch.pairs.to(device))

    def predict_step(self, batch: Loaded, batch_idx: int = 0) -> int:
        """Add the batch to the metrics; returns how many pairs it held."""
        self.suite.update(batch.pairs)
        self.unreadable.extend(batch.unreadable)
        return len(batch.pairs.keys)

    def on_predict_end(self) -> None:
        self.values = self.suite.compute()
        self.unreadable = gather_lists(self.unreadable)


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
    lines += [*result["evaluation_errors"].values(), *result["evaluation_caveats"].values()]
    skipped = result["skipped"]["count"]
    return "\n".join(
        [f"{result['pairs']} pairs" + (f" ({skipped} skipped, see metrics.json)" if skipped else ""), *lines]
    )


def readable_records(folder: Path) -> tuple[list[Record], list[Unreadable]]:
    """The newest done record of every key with both image files, sorted by key, and what was skipped:
    lines that are not records, records whose files are missing. Raises ``FileNotFoundError`` when
    ``folder`` is not a results folder (nothing is created)."""
    if not (folder / "records").is_dir():
        raise FileNotFoundError(f"{folder} is not an ldce results folder (it has no records/); nothing evaluated")
    unreadable: list[Unreadable] = []
    done = [r for r in store.latest_records(store.iter_records(folder, unreadable)).values() if r.done]
    missing = [r for r in done if not store.has_files(folder, r, ("original", "counterfactual"))]
    for record in missing:
        paths = [p for p in (record.files.original, record.files.counterfactual) if not p or not (folder / p).is_file()]
        log.warning("skipping %r: missing %s", record.key, paths)
        unreadable += [
            Unreadable(str(path), f"missing (the {record.key!r} record names it)", record.key) for path in paths
        ]
    return sorted((r for r in done if r not in missing), key=lambda r: r.key), unreadable


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
    records, unreadable = readable_records(folder)
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
    skipped = sorted(unreadable + evaluator.unreadable, key=lambda u: u.where)
    scored = [r for r in records if r.key not in {u.key for u in evaluator.unreadable}]
    result = {
        "pairs": len(scored),
        "skipped": {"count": len(skipped), "items": [asdict(u) for u in skipped]},
        "metrics": run_means(scored),
        "evaluation": evaluator.values,
        "evaluation_errors": suite.problems(evaluator.values, len(scored)),
        "evaluation_caveats": suite.caveats(evaluator.values, len(scored)),
    }
    store.write_json(folder / "metrics.json", result)
    log.info("metrics of %s:\n%s", folder, table(result))
    return result


def main(argv: list[str]) -> None:
    """``ldce evaluate …``: parse ``argv`` (``--config`` reads a YAML of these options) and evaluate."""
    parser = ArgumentParser(
        prog="ldce evaluate", description="Counterfactual metrics of an ldce results folder.", exit_on_error=False
    )
    parser.add_argument("--config", action="config")
    parser.add_function_arguments(evaluate, as_positional=False)
    options = parser.instantiate(parser.parse_args(argv))
    evaluate(**{name: value for name, value in vars(options).items() if name != "config"})
