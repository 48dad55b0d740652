"""Classifiers as LDCE sees them: ``f`` takes [0, 1] RGB images and returns logits.

A :class:`ClassifierWrapper` puts differentiable preprocessing (resize, centre crop, grayscale,
normalisation) in front of any ``nn.Module``, freezes it and keeps it in eval mode, so that gradients
flow to the input image only. Loaders build one from local weight files (timm, torchvision, or any
importable class); none of them touches the network. The helpers below turn logits into the
quantities the sampler and the metrics need, for multi-class logits ``(B, K)`` and binary-attribute
logits ``(B,)`` alike.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from ldce.checkpoints import load_torch_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)
Channels = Literal["rgb", "grayscale"]
Interpolation = Literal["bilinear", "bicubic"]


class Preprocess(nn.Module):
    """Differentiable ``[0, 1]`` RGB ``(B, 3, H, W)`` → classifier input ``(B, C, h, w)``.

    In order: resize the shorter side to ``resize`` (no antialiasing, as torchvision's
    ``resize(..., antialias=False)``), centre-crop to ``crop × crop`` (as torchvision's
    ``center_crop``), convert to one luminance channel if ``channels == "grayscale"``, then
    ``(x − mean) / std``. Each step is skipped when its argument is ``None``.
    """

    def __init__(
        self,
        resize: int | None = None,
        crop: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        channels: Channels = "rgb",
        interpolation: Interpolation = "bilinear",
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together")
        self.resize, self.crop, self.channels, self.interpolation = resize, crop, channels, interpolation
        self.normalise = mean is not None
        self.register_buffer("mean", torch.tensor(mean or (0.0,)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0,)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(h, w)`` of the resize: shorter side ``resize``, longer side scaled and truncated."""
        if self.resize is None or min(height, width) == self.resize:
            return height, width
        if height <= width:
            return self.resize, int(self.resize * width / height)
        return int(self.resize * height / width), self.resize

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns ``(B, C, h, w)`` with C = 3 or 1."""
        size = self.resized_size(*images.shape[-2:])
        if size != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=size, mode=self.interpolation, align_corners=False, antialias=False)
        if self.crop is not None:
            images = self._centre_crop(images)
        if self.channels == "grayscale":
            images = (images * self.luma.to(images.dtype)).sum(dim=1, keepdim=True)
        if self.normalise:
            images = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return images

    def _centre_crop(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        if self.crop > min(height, width):
            raise ValueError(f"cannot centre-crop {self.crop}×{self.crop} from a {height}×{width} image")
        top, left = int(round((height - self.crop) / 2.0)), int(round((width - self.crop) / 2.0))
        return images[..., top : top + self.crop, left : left + self.crop]


class ClassifierWrapper(nn.Module):
    """``f(x)``: frozen, always-eval classifier on [0, 1] RGB images, differentiable w.r.t. ``x``.

    ``binary_index`` picks one logit of a multi-logit attribute head (e.g. smile in a
    gender/smile/young DenseNet); the output is then ``(B,)`` instead of ``(B, K)``.
    """

    def __init__(
        self,
        model: nn.Module,
        resize: int | None = None,
        crop: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        channels: Channels = "rgb",
        interpolation: Interpolation = "bilinear",
        binary_index: int | None = None,
    ) -> None:
        super().__init__()
        self.preprocess = Preprocess(resize, crop, mean, std, channels, interpolation)
        self.model = model.requires_grad_(False)
        self.binary_index = binary_index
        self.train(False)

    def train(self, mode: bool = True) -> ClassifierWrapper:
        """Ignore ``mode``: BatchNorm and Dropout of the classifier stay in eval mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns logits ``(B, K)``, or ``(B,)`` with ``binary_index``."""
        logits = self.model(self.preprocess(images))
        return logits if self.binary_index is None else logits[:, self.binary_index]


def is_binary(logits: Tensor) -> bool:
    """True for one binary-attribute logit per sample (``(B,)``), False for ``(B, K)``."""
    return logits.ndim == 1


def target_log_likelihood(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample ``log p(y_t | x)``: ``log_softmax(logits)[b, y_b]``, or ``−BCEWithLogits(l_b, y_b)``.

    logits: ``(B, K)`` or ``(B,)``; targets: ``(B,)`` class indices (0/1 for binary). Returns ``(B,)``.
    """
    if is_binary(logits):
        return -F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return logits.log_softmax(dim=-1).gather(1, targets.long()[:, None]).squeeze(1)


def target_probability(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample ``p(y_t | x)``: softmax at the target, or ``σ(l)`` / ``1 − σ(l)``. Returns ``(B,)``."""
    if is_binary(logits):
        return torch.where(targets.bool(), logits.sigmoid(), (-logits).sigmoid())
    return logits.softmax(dim=-1).gather(1, targets.long()[:, None]).squeeze(1)


def predict(logits: Tensor) -> Tensor:
    """Predicted class, int64 ``(B,)``: argmax, or ``logit > 0`` for binary logits."""
    return (logits > 0).long() if is_binary(logits) else logits.argmax(dim=-1)


def confidence(logits: Tensor) -> Tensor:
    """Probability of the predicted class, ``(B,)``."""
    return target_probability(logits, predict(logits))


def read_state_dict(path: str | Path, key: str | None = None, strip_prefix: str | None = None) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` or torch file (read by ``ldce.checkpoints.load_torch_file``), under ``key`` if given.

    ``strip_prefix`` (e.g. ``"module."``) is removed from matching keys. Errors name the file: ``FileNotFoundError``,
    or ``ValueError`` when it is unreadable, truncated or not a state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights {path}: no such file (expected safetensors or a torch file)")
    try:
        safetensors = path.suffix == ".safetensors"
        state = load_file(path) if safetensors else load_torch_file(path, "classifier weights")
    except Exception as error:
        raise ValueError(f"classifier weights {path}: unreadable, truncated or not a state dict ({error})") from error
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            found = sorted(map(str, state))[:10] if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"classifier weights {path}: no entry {key!r} (found {found})")
        state = state[key]
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        found = sorted(map(str, state))[:10] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"classifier weights {path}: not a flat dict of tensors (found {found}); set state_dict_key")
    if strip_prefix:
        state = {name.removeprefix(strip_prefix): value for name, value in state.items()}
    return state


def load_weights(model: nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    """Load ``state`` into ``model`` strictly; raise ``ValueError`` naming ``path``, ``what`` and the mismatch."""
    own = model.state_dict()
    missing = sorted(k for k in own.keys() - state.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(state.keys() - own.keys())
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own.keys() & state.keys()
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        problems = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": shapes}
        text = "; ".join(f"{len(v)} {k} {v[:5]}" for k, v in problems.items() if v)
        raise ValueError(f"classifier weights {path} do not fit {what}: {text}")
    model.load_state_dict(state, strict=False)


def timm_classifier(
    name: str,
    weights_path: str,
    num_classes: int | None = None,
    binary_index: int | None = None,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
    resize: int | None = None,
    crop: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    channels: Channels | None = None,
    interpolation: Interpolation | None = None,
) -> ClassifierWrapper:
    """A timm model ``name`` with weights from a local file (timm's own key layout).

    Preprocessing follows ``timm.data.resolve_model_data_config`` (shorter side to
    ``floor(size / crop_pct)``, centre crop ``size``, the model's mean/std and interpolation,
    grayscale for 1-channel inputs); each argument left ``None`` takes that default.
    """
    import timm
    from timm.data import resolve_model_data_config

    extra = {} if num_classes is None else {"num_classes": num_classes}
    model = timm.create_model(name, pretrained=False, **extra)
    state = read_state_dict(weights_path, state_dict_key, strip_prefix)
    load_weights(model, state, weights_path, f"timm model {name!r}")
    config = resolve_model_data_config(model)
    in_chans, height, width = config["input_size"]
    if config.get("crop_mode", "center") != "center" or height != width:
        raise ValueError(f"timm model {name!r}: only square centre crops are supported, got {config}")
    return ClassifierWrapper(
        model,
        resize=resize or int(height / config["crop_pct"]),
        crop=crop or height,
        mean=mean or tuple(config["mean"]),
        std=std or tuple(config["std"]),
        channels=channels or ("grayscale" if in_chans == 1 else "rgb"),
        interpolation=interpolation or ("bicubic" if config["interpolation"] == "bicubic" else "bilinear"),
        binary_index=binary_index,
    )


def _torchvision_keys(name: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename the legacy ``norm.1``-style keys of torchvision's published DenseNet files."""
    if not name.startswith("densenet"):
        return state
    legacy = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)$")
    return {legacy.sub(r"\1\2", k): v for k, v in state.items()}


def torchvision_classifier(
    name: str,
    weights_path: str,
    num_classes: int | None = None,
    binary_index: int | None = None,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
    resize: int | None = 256,
    crop: int | None = 224,
    mean: tuple[float, ...] | None = IMAGENET_MEAN,
    std: tuple[float, ...] | None = IMAGENET_STD,
    channels: Channels = "rgb",
    interpolation: Interpolation = "bilinear",
) -> ClassifierWrapper:
    """``torchvision.models.get_model(name)`` with weights from a local file; ImageNet preprocessing by default."""
    import torchvision

    extra = {} if num_classes is None else {"num_classes": num_classes}
    model = torchvision.models.get_model(name, weights=None, **extra)
    state = _torchvision_keys(name, read_state_dict(weights_path, state_dict_key, strip_prefix))
    load_weights(model, state, weights_path, f"torchvision model {name!r}")
    return ClassifierWrapper(model, resize, crop, mean, std, channels, interpolation, binary_index)


def import_class(class_path: str) -> type[nn.Module]:
    """The class named by a dotted path ``"package.module.Class"``."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import classifier class {class_path!r}: {error}") from error


def module_classifier(
    class_path: str,
    init_args: dict | None = None,
    weights_path: str | None = None,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
    binary_index: int | None = None,
    resize: int | None = None,
    crop: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    channels: Channels = "rgb",
    interpolation: Interpolation = "bilinear",
) -> ClassifierWrapper:
    """``class_path(**init_args)`` with weights from a local file (if given); no preprocessing by default."""
    model = import_class(class_path)(**(init_args or {}))
    if weights_path is not None:
        state = read_state_dict(weights_path, state_dict_key, strip_prefix)
        load_weights(model, state, weights_path, class_path)
    return ClassifierWrapper(model, resize, crop, mean, std, channels, interpolation, binary_index)
