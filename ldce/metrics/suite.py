"""``MetricSuite``: the configured metrics over batches of pairs, each judge network applied once per batch."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from ldce.metrics.frechet import FID, SplitFID


@dataclass
class Pairs:
    """A batch of B explained inputs.

    keys: B sample keys; original, counterfactual: ``(B, 3, H, W)`` in [0, 1]; source (the label)
    and target: int64 ``(B,)``.
    """

    keys: list[str]
    original: Tensor
    counterfactual: Tensor
    source: Tensor
    target: Tensor

    @staticmethod
    def cat(parts: list[Pairs]) -> Pairs:
        """The pairs of several batches, in order."""
        tensors = [
            torch.cat([getattr(p, name) for p in parts]) for name in ("original", "counterfactual", "source", "target")
        ]
        return Pairs([key for p in parts for key in p.keys], *tensors)

    def to(self, device: torch.device | str) -> Pairs:
        return replace(
            self,
            **{name: getattr(self, name).to(device) for name in ("original", "counterfactual", "source", "target")},
        )


class Outputs:
    """The judge networks' outputs on one batch, each computed at most once and only when asked for:
    ``of(name)`` → ``(f(x), f(x'))``, ``on_counterfactuals(name)`` → ``f(x')``."""

    def __init__(self, pairs: Pairs, models: nn.ModuleDict) -> None:
        self.pairs, self.models = pairs, models
        self._cache: dict[tuple[str, str], Tensor] = {}

    def of(self, name: str) -> tuple[Tensor, Tensor]:
        return self._output(name, "original"), self.on_counterfactuals(name)

    def on_counterfactuals(self, name: str) -> Tensor:
        return self._output(name, "counterfactual")

    def _output(self, name: str, images: str) -> Tensor:
        if (name, images) not in self._cache:
            self._cache[name, images] = self.models[name](getattr(self.pairs, images))
        return self._cache[name, images]


Feed = Callable[[Outputs], tuple]
"""The arguments of a metric's ``update`` for one batch, taken from the pairs and the networks' outputs."""


RANK_DEFICIENT = (
    "metric {name} over {pairs} pairs: fewer than {floor} for its {dims} feature dimensions, so its covariances "
    "are rank-deficient and the value is biased upward; compare it only with values over as many images"
)


UNSCORED = "metric {name} has nothing to score: no counterfactual was made"
UNDEFINED = (
    "metric {name} is undefined for these inputs: too few (a Fréchet distance needs at least 2 images on "
    "each side, sFID 2 in each half)"
)


class MetricSuite(nn.Module):
    """Named metrics, the networks they judge with, and the metrics that could not be built (``errors``).

    ``update`` adds a batch on this rank; ``compute`` syncs every metric across ranks (a collective:
    every rank calls it, also one without pairs) and returns plain floats, ``None`` where undefined
    (no pairs; FID with fewer than 2), :meth:`problems` says why.
    """

    def __init__(
        self, models: dict[str, nn.Module], metrics: dict[str, tuple[Metric, Feed]], errors: dict[str, str]
    ) -> None:
        super().__init__()
        self.models = nn.ModuleDict(models)
        self.metrics = nn.ModuleDict({name: metric for name, (metric, _) in metrics.items()})
        self.feeds = {name: feed for name, (_, feed) in metrics.items()}
        self.errors = dict(errors)

    @torch.no_grad()
    def update(self, pairs: Pairs) -> None:
        if not pairs.keys:
            return
        outputs = Outputs(pairs, self.models)
        for name, metric in self.metrics.items():
            metric.update(*self.feeds[name](outputs))

    def compute(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            for name, metric in self.metrics.items():
                value = float(metric.compute())
                values[name] = None if math.isnan(value) else value
        return values

    def problems(self, values: dict[str, float | None], pairs: int) -> dict[str, str]:
        """Why a metric has no value: it could not be built (``errors``), or is undefined (``None`` in
        ``values``, what :meth:`compute` returned over ``pairs`` pairs, all ranks) — for no pairs at all, or
        too few."""
        reason = UNSCORED if pairs == 0 else UNDEFINED
        return self.errors | {name: reason.format(name=name) for name, value in values.items() if value is None}

    def caveats(self, values: dict[str, float | None], pairs: int) -> dict[str, str]:
        """Why a Fréchet distance in ``values`` (what :meth:`compute` returned over ``pairs`` pairs, all
        ranks) is not comparable with one over more pairs: it had fewer than its ``full_rank_pairs``
        (:class:`~ldce.metrics.frechet.FID`, ``SplitFID``)."""
        return {
            name: RANK_DEFICIENT.format(name=name, pairs=pairs, floor=metric.full_rank_pairs, dims=metric.num_features)
            for name, metric in self.metrics.items()
            if isinstance(metric, (FID, SplitFID)) and values.get(name) is not None and pairs < metric.full_rank_pairs
        }

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
