"""``ClassifierTraining``: trains one of the demo's Fashion-MNIST classifiers (``ldce fit``).

The network is built by :func:`ldce.demo.models.build`, so what is exported is exactly what the demo
loads back. Training uses light augmentation (random horizontal flip, random translation by up to
``max_shift`` pixels with zero fill), label smoothing, AdamW and a one-cycle learning-rate schedule
stepped per batch. ``export(path)`` writes the weights as safetensors and a JSON card next to them.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from safetensors.torch import save_file
from torch import Tensor

from ldce.demo.models import build, card_path

log = logging.getLogger(__name__)
Architecture = Literal["fashion_cnn", "fashion_convnext"]


def translate(images: Tensor, shifts: Tensor) -> Tensor:
    """Shift each image by ``shifts[b] = (dy, dx)`` whole pixels, filling with zeros.

    images: ``(B, C, H, W)``; shifts: int64 ``(B, 2)`` with ``|dy|, |dx| ≤ s``. Returns ``(B, C, H, W)``.
    """
    s = int(shifts.abs().max()) if shifts.numel() else 0
    height, width = images.shape[-2:]
    padded = F.pad(images, (s, s, s, s))
    rows = (s - shifts[:, 0, None] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (s - shifts[:, 1, None] + torch.arange(width, device=images.device))[:, None, None, :]
    batch = torch.arange(len(images), device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


class ClassifierTraining(LightningModule):
    """Train ``build(architecture, architecture_args)`` on ``(images in [0, 1], labels)`` batches.

    Args:
        architecture: constructor name in :data:`ldce.demo.models.ARCHITECTURES`.
        architecture_args: keyword arguments of that constructor.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay (not applied to biases and normalisation weights).
        warmup_fraction: share of the steps spent warming up to ``lr`` (one-cycle ``pct_start``).
        label_smoothing: cross-entropy label smoothing.
        flip: randomly mirror training images left-right.
        max_shift: largest random translation of training images, in pixels (0: none).
        seed: seeds the weight initialisation and the augmentation, independently of the global RNG.
    """

    def __init__(
        self,
        architecture: Architecture = "fashion_cnn",
        architecture_args: dict[str, Any] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        warmup_fraction: float = 0.15,
        label_smoothing: float = 0.1,
        flip: bool = True,
        max_shift: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = build(architecture, architecture_args)
        self.augment_generator = torch.Generator().manual_seed(seed + 1)
        self.started = time.monotonic()

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, 32, 32)`` in [0, 1]. Returns ``(B, 10)`` logits."""
        return self.net(images)

    def augment(self, images: Tensor) -> Tensor:
        """Random left-right flips and translations of a training batch (drawn on the CPU generator)."""
        count = len(images)
        if self.hparams.flip:
            mirror = torch.rand(count, generator=self.augment_generator).lt(0.5).to(images.device)
            images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
        if self.hparams.max_shift > 0:
            shift = self.hparams.max_shift
            images = translate(
                images, torch.randint(-shift, shift + 1, (count, 2), generator=self.augment_generator).to(images.device)
            )
        return images

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str, smoothing: float = 0.0) -> Tensor:
        """Cross-entropy of ``batch``; logs ``<stage>/loss`` and ``<stage>/acc`` (epoch means over samples)."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        accuracy = (logits.argmax(dim=-1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=on_step, batch_size=len(labels))
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def on_train_start(self) -> None:
        self.started = time.monotonic()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        return self._evaluate((self.augment(images), labels), "train", self.hparams.label_smoothing)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on 1-d parameters) with a one-cycle schedule over all training steps."""
        decay = [p for p in self.net.parameters() if p.ndim > 1]
        no_decay = [p for p in self.net.parameters() if p.ndim <= 1]
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.hparams.lr,
            total_steps=self.trainer.estimated_stepping_batches,
            pct_start=self.hparams.warmup_fraction,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def card(self) -> dict[str, Any]:
        """What the JSON card records: how to rebuild the network, how it was trained, what it scored."""
        metrics = self.trainer.callback_metrics if self._trainer is not None else {}
        score = {name: round(float(metrics[name]), 5) for name in ("val/acc", "test/acc") if name in metrics}
        return {
            "architecture": self.hparams.architecture,
            "architecture_args": self.hparams.architecture_args or {},
            "class_path": f"ldce.demo.models.{self.hparams.architecture}",
            "parameters": sum(p.numel() for p in self.net.parameters()),
            "hyperparameters": {
                k: v for k, v in self.hparams.items() if not k.startswith("_") and not k.startswith("architecture")
            },
            "epochs": self.current_epoch,
            "val_accuracy": score.get("val/acc"),
            "test_accuracy": score.get("test/acc"),
            "training_seconds": round(time.monotonic() - self.started, 1),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }

    def export(self, path: str | Path) -> None:
        """Write the network's weights to ``path`` (safetensors) and the JSON card next to it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({name: value.detach().cpu().contiguous() for name, value in self.net.state_dict().items()}, str(path))
        card_path(path).write_text(json.dumps(self.card(), indent=2) + "\n")
        log.info("wrote %s and %s", path, card_path(path))
