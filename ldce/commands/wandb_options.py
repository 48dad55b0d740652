"""Weights & Biases options of every ``ldce`` run (``--wandb.mode`` …)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import WandbLogger


class WandbOptions:
    """Weights & Biases run options; the run's files (its media too) go under ``<output_dir>/wandb`` and its
    config is the run's whole parsed config (model, data, trainer, method settings).

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

    def logger(self, save_dir: str, config: dict[str, Any]) -> WandbLogger | None:
        """The run's logger (``None`` when disabled), writing under ``save_dir`` (the output folder, whose
        name names the run unless ``name`` is given), with ``config`` as the run's config (values JSON
        cannot hold, such as paths, as text)."""
        if self.mode == "disabled":
            return None
        name = self.name or Path(save_dir).resolve().name
        return QuietWandbLogger(
            save_dir=save_dir,
            offline=self.mode == "offline",
            project=self.project,
            name=name,
            entity=self.entity,
            tags=self.tags,
            config=json.loads(json.dumps(config, default=str)),
        )


class QuietWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous=None`` it always hands to ``wandb.init``, which
    wandb ≥ 0.23 answers with a deprecation warning on every run (wandb/wandb#10909)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
