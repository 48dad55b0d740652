"""Image feature extractors from local weight files, for choosing targets by visual similarity.

* ``simsiam``: SimSiam's ResNet-50 (facebookresearch/simsiam, ``checkpoint_0099.pth.tar``), the
  reference's choice for Flowers-102 and Pets targets. The file holds ``state_dict`` with the
  DDP-wrapped model's keys: ``module.encoder.*`` — a torchvision ResNet-50 whose ``fc`` is the
  3-layer projector ``fc.0`` … ``fc.7`` (Linear, BN, ReLU, Linear, BN, ReLU, the original 2048-way
  ``fc``, a BN without affine parameters) — and ``module.predictor.*``, unused. The feature is the
  encoder's 2048-d output, as the reference computed it.
* ``timm:<name>``: any timm model with its classifier removed (pooled features), timm's key layout.

Both take [0, 1] images and normalise them (ImageNet statistics for SimSiam; timm's own
preprocessing otherwise); they are frozen and in eval mode.
"""

from __future__ import annotations

from torch import Tensor, nn

from ldce.checkpoints import existing_file, load_strict, read_tensors
from ldce.classifiers.loaders import classifier
from ldce.classifiers.wrapper import IMAGENET_MEAN, IMAGENET_STD, ClassifierWrapper, Preprocessing

SIMSIAM_DIM = 2048
ENCODER_PREFIXES = ("module.encoder.", "encoder.")


def simsiam_projector(width: int = 2048, dim: int = SIMSIAM_DIM) -> nn.Sequential:
    """SimSiam's projector as it replaces the ResNet's ``fc`` (module indices as in the checkpoint)."""
    return nn.Sequential(
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, dim),
        nn.BatchNorm1d(dim, affine=False),
    )


def simsiam_encoder_state(state: dict[str, Tensor], path: str) -> dict[str, Tensor]:
    """The encoder's tensors with the DDP/SimSiam prefix removed (the predictor is dropped)."""
    for prefix in ENCODER_PREFIXES:
        encoder = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if encoder:
            return encoder
    raise ValueError(f"SimSiam checkpoint {path}: no 'module.encoder.*' weights (found e.g. {sorted(state)[:5]})")


def simsiam_resnet50(weights_path: str) -> ClassifierWrapper:
    """SimSiam ResNet-50 encoder from ``checkpoint_0099.pth.tar``: [0, 1] images → ``(B, 2048)``."""
    import torchvision

    encoder = torchvision.models.resnet50(weights=None)
    encoder.fc = simsiam_projector()
    what = "SimSiam ResNet-50 encoder (module.encoder.* with projector fc)"
    state = simsiam_encoder_state(read_tensors(weights_path, what, "state_dict"), weights_path)
    load_strict(encoder, state, weights_path, what)
    return ClassifierWrapper(encoder, Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD))


def feature_extractor(kind: str, weights_path: str) -> ClassifierWrapper:
    """``simsiam`` or ``timm:<model name>`` (see the module docstring) with weights from ``weights_path``."""
    if kind == "simsiam":
        return simsiam_resnet50(weights_path)
    if kind.startswith("timm:"):
        existing_file(weights_path, f"feature extractor {kind!r} weights")
        return classifier(timm=kind.removeprefix("timm:"), checkpoint=weights_path, num_classes=0)
    raise ValueError(f"unknown feature extractor {kind!r}: use 'simsiam' or 'timm:<model name>'")
