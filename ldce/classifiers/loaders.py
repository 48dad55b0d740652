"""Build a :class:`ClassifierWrapper` from local weight files: timm, torchvision, or any importable class.

None of them touches the network. Weights are read by ``ldce.checkpoints`` (safetensors, or torch
files without running their code) and loaded strictly: a file of another architecture fails,
naming the file and the mismatching keys.
"""

from __future__ import annotations

import importlib
import re

from torch import Tensor, nn

from ldce.checkpoints import load_strict, read_tensors
from ldce.classifiers.wrapper import IMAGENET_PREPROCESSING, ClassifierWrapper, Preprocessing

WEIGHTS = "classifier weights"


def timm_preprocessing(model: nn.Module, name: str) -> Preprocessing:
    """``timm.data.resolve_model_data_config``: shorter side ``floor(size / crop_pct)``, centre crop
    ``size``, the model's mean/std and interpolation, grayscale for 1-channel inputs."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    in_chans, height, width = config["input_size"]
    if config.get("crop_mode", "center") != "center" or height != width:
        raise ValueError(f"timm model {name!r}: only square centre crops are supported, got {config}")
    return Preprocessing(
        resize=int(height / config["crop_pct"]),
        crop=height,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        channels="grayscale" if in_chans == 1 else "rgb",
        interpolation="bicubic" if config["interpolation"] == "bicubic" else "bilinear",
    )


def timm_classifier(
    name: str,
    weights_path: str,
    num_classes: int | None = None,
    binary_index: int | None = None,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
    preprocessing: Preprocessing | None = None,
) -> ClassifierWrapper:
    """A timm model ``name`` with weights from a local file (timm's own key layout).

    Args:
        name: timm architecture name, e.g. ``resnet50``.
        weights_path: local safetensors or torch file.
        num_classes: size of the classification head (default: the architecture's).
        binary_index: explain this one logit as a binary attribute (``(B,)`` logits).
        state_dict_key: where the weights sit in the file (default: the top level, or ``state_dict``).
        strip_prefix: a key prefix to drop, e.g. ``module.``.
        preprocessing: default timm's own data config (:func:`timm_preprocessing`).
    """
    import timm

    extra = {} if num_classes is None else {"num_classes": num_classes}
    model = timm.create_model(name, pretrained=False, **extra)
    load_strict(
        model, read_tensors(weights_path, WEIGHTS, state_dict_key, strip_prefix), weights_path, f"timm model {name!r}"
    )
    return ClassifierWrapper(model, preprocessing or timm_preprocessing(model, name), binary_index)


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
    preprocessing: Preprocessing = IMAGENET_PREPROCESSING,
) -> ClassifierWrapper:
    """``torchvision.models.get_model(name)`` with weights from a local file.

    Args:
        name: torchvision model name, e.g. ``resnet50``.
        weights_path: local file such as ``resnet50-0676ba61.pth``.
        num_classes: size of the classification head (default: the architecture's).
        binary_index: explain this one logit as a binary attribute.
        state_dict_key: where the weights sit in the file.
        strip_prefix: a key prefix to drop, e.g. ``module.``.
        preprocessing: default torchvision's ImageNet evaluation transform (256 → 224, ImageNet statistics).
    """
    import torchvision

    extra = {} if num_classes is None else {"num_classes": num_classes}
    model = torchvision.models.get_model(name, weights=None, **extra)
    state = _torchvision_keys(name, read_tensors(weights_path, WEIGHTS, state_dict_key, strip_prefix))
    load_strict(model, state, weights_path, f"torchvision model {name!r}")
    return ClassifierWrapper(model, preprocessing, binary_index)


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
    preprocessing: Preprocessing = Preprocessing(),
) -> ClassifierWrapper:
    """``class_path(**init_args)`` with weights from a local file (if given).

    Args:
        class_path: dotted path of an ``nn.Module`` class on [0, 1] images (after ``preprocessing``).
        init_args: its constructor's keyword arguments.
        weights_path: local safetensors or torch file (``None``: the constructor's own weights).
        state_dict_key: where the weights sit in the file.
        strip_prefix: a key prefix to drop, e.g. ``module.``.
        binary_index: explain this one logit as a binary attribute.
        preprocessing: default none.
    """
    model = import_class(class_path)(**(init_args or {}))
    if weights_path is not None:
        load_strict(model, read_tensors(weights_path, WEIGHTS, state_dict_key, strip_prefix), weights_path, class_path)
    return ClassifierWrapper(model, preprocessing, binary_index)
