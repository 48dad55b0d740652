"""Weights & Biases options of every ``ldce`` run (``--wandb.mode`` …)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning.pytorch.loggers import WandbLogger


class WandbOptions:
    """Weights & Biases run options; the run's files go under ``<output_dir>/wandb``.

    Args:
        mode: ``offline`` (files only), ``online`` (sync) or ``disabled``.
        project: the W&B project.
        name: the run's name (default: the output folder's name).
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
        name = self.name or Path(save_dir).resolve().name
        offline = self.mode == "offline"
        return QuietWandbLogger(
            save_dir=save_dir, offline=offline, project=self.project, name=name, entity=self.entity, tags=self.tags
        )


class QuietWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous=None`` it always hands to ``wandb.init``, which
    wandb ≥ 0.23 answers with a deprecation warning on every run (wandb/wandb#10909)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
