"""``LinearHeadTraining``: a linear head on frozen DINO ViT-S/8 features (``ldce fit``).

The Flowers-102 experiment explains "DINO ViT-S/8 + linear head"; the reference leaves training the
head to the user. This follows DINO's linear evaluation: the class token of the frozen backbone
(ImageNet normalisation), one linear layer initialised ``N(0, 0.01²)`` with zero bias,
cross-entropy, SGD with momentum and a cosine schedule over the epochs; augmentation happens in the
datamodule (:class:`ldce.datamodules.flowers_training.Flowers102DataModule`). ``export(path)``
writes the head as safetensors with DINO's key names (``linear.weight``, ``linear.bias``), which
:func:`ldce.classifiers.paper.dino_linear_classifier` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
from lightning.pytorch import LightningModule
from safetensors.torch import save_file
from torch import Tensor

from ldce.classifiers import IMAGENET_MEAN, IMAGENET_STD, ClassifierWrapper, Preprocessing
from ldce.classifiers.paper import DINO_WIDTH, LinearHead, dino_vit_small8


class LinearHeadTraining(LightningModule):
    """Train ``LinearHead(384, num_classes)`` on the class token of a frozen DINO ViT-S/8.

    Args:
        backbone_path: ``dino_deitsmall8_pretrain.pth`` (original DINO key layout).
        num_classes: outputs of the head (102 for Flowers-102).
        lr: peak SGD learning rate (DINO: ``0.001 · batch size / 256``).
        momentum: SGD momentum (DINO: 0.9).
        weight_decay: SGD weight decay (DINO: 0).
        mean: per-channel input mean of the backbone (ImageNet's).
        std: per-channel input standard deviation of the backbone (ImageNet's).
    """

    def __init__(
        self,
        backbone_path: str,
        num_classes: PositiveInt = 102,
        lr: PositiveFloat = 0.001,
        momentum: NonNegativeFloat = 0.9,
        weight_decay: NonNegativeFloat = 0.0,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = ClassifierWrapper(dino_vit_small8(backbone_path), Preprocessing(mean=mean, std=std))
        self.head = LinearHead(DINO_WIDTH, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, 224, 224)`` in [0, 1]. Returns logits ``(B, num_classes)``."""
        with torch.no_grad():
            features = self.backbone(images)
        return self.head(features)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of the head on an (augmented) batch ``(images, labels)``."""
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Validation loss and top-1 accuracy."""
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels))
        self.log("val/accuracy", (logits.argmax(1) == labels).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD on the head only, cosine-annealed to 0 over ``trainer.max_epochs``."""
        optimizer = torch.optim.SGD(
            self.head.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.trainer.max_epochs or 1))
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def export(self, path: str | Path) -> None:
        """Write the head as safetensors: ``linear.weight`` ``(K, 384)``, ``linear.bias`` ``(K,)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(path))
