"""``classifier``: the one entry for the classifier to explain, built from local files, never the network.

Exactly one source names the network — a timm model (``timm: resnet50``), a torchvision model
(``torchvision: resnet50``), a TorchScript file (``torchscript: model.pt``) or any ``nn.Module`` class
(``class_path: my_package.Net`` with ``init_args``) — and ``checkpoint`` names its weights:

- timm reads the checkpoint itself (``timm.create_model(name, pretrained=True,
  pretrained_cfg_overlay=dict(file=checkpoint))``): safetensors or torch files, weights at the top level
  or under ``state_dict`` / ``model`` / the EMA keys, ``module.`` prefixes, and each model's own
  conversion of published formats; loading is strict (a head of another size fails);
- torchvision and class paths read it with ``ldce.checkpoints`` (torch files without running their
  code), ``state_dict_key`` / ``strip_prefix`` for nested or prefixed files, loaded strictly;
- a TorchScript file holds its own weights.

The preprocessing defaults to the source's own (timm's data config; torchvision's ImageNet transform;
none for TorchScript and class paths); :func:`ldce.classifiers.wrapper.rescale_warning` says when it
resizes the images it is given by more than 2×.
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any

import torch
from jsonargparse.typing import NonNegativeInt
from torch import Tensor, nn

from ldce.checkpoints import existing_file, load_strict, read_tensors
from ldce.checks import did_you_mean, validated
from ldce.classifiers.wrapper import IMAGENET_PREPROCESSING, ClassifierWrapper, Preprocessing

log = logging.getLogger(__name__)

WEIGHTS = "classifier weights"
SOURCES = ("timm", "torchvision", "torchscript", "class_path")


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


def _timm(name: str, checkpoint: str | None, num_classes: int | None, key: str | None, prefix: str | None) -> nn.Module:
    """timm's ``name``, its weights read by timm (or, with ``key``/``prefix``, by ldce) and loaded strictly."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}{_closest(name, timm.list_models())}")
    head = {} if num_classes is None else {"num_classes": num_classes}
    if checkpoint is None:
        return timm.create_model(name, pretrained=False, **head)
    weights = (
        {"state_dict": read_tensors(checkpoint, WEIGHTS, key, prefix)}
        if key or prefix
        else {"file": str(existing_file(checkpoint, WEIGHTS))}
    )
    keep_head = {} if not num_classes else {"num_classes": num_classes}  # 0 (features): timm drops the head
    try:
        with _TimmLoadReport() as report:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={**weights, **keep_head}, **head)
    except Exception as error:  # timm's readers raise many kinds (safetensors, pickle, strict load): one message
        raise ValueError(f"{checkpoint}: does not fit timm model {name!r}: {_load_failure(error)}") from error
    if report.mismatches:
        raise ValueError(f"{checkpoint}: does not fit timm model {name!r}: {report.mismatches[0][:300]}")
    return model


class _TimmLoadReport(logging.Handler):
    """timm loads a headless model (``num_classes=0``) non-strictly and only logs the keys that did not
    fit ("Missing keys …", "Unexpected keys …"); this collects those lines so that the load is strict."""

    LOGGER = "timm.models._builder"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.mismatches: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            self.mismatches.append(message)

    def __enter__(self) -> _TimmLoadReport:
        logger = logging.getLogger(self.LOGGER)
        self.level_before = logger.level
        logger.addHandler(self)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self.level_before)


def _closest(name: str, known: list[str]) -> str:
    """``; did you mean …?`` for the known model name closest to ``name`` (empty when none is close)."""
    return did_you_mean(name, known)


def _load_failure(error: Exception) -> str:
    """``load_state_dict``'s strict-load error as counts and the first keys; any other error's first line."""
    parts = str(error).split("\n\t")
    if not parts[0].startswith("Error(s) in loading state_dict"):
        return f"{type(error).__name__}: {parts[0].splitlines()[0] if parts[0] else ''}"
    kinds = {"Missing key(s)": "missing keys", "Unexpected key(s)": "unexpected keys"}
    found = []
    for part in parts[1:]:
        kind = next((name for prefix, name in kinds.items() if part.startswith(prefix)), None)
        keys = re.findall(r'"([^"]+)"', part)
        found.append(f"{len(keys)} {kind} ({', '.join(keys[:3])}…)" if kind else part.strip())
    return "; ".join(found)[:400]


def _torchvision_keys(name: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename the legacy ``norm.1``-style keys of torchvision's published DenseNet files."""
    if not name.startswith("densenet"):
        return state
    legacy = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)$")
    return {legacy.sub(r"\1\2", k): v for k, v in state.items()}


def _torchvision(name: str, checkpoint: str | None, num_classes: int | None, key: str | None, prefix: str | None):
    import torchvision

    known = torchvision.models.list_models()
    if name.lower() not in known:
        raise ValueError(f"torchvision has no model {name!r}{_closest(name.lower(), known)}")
    head = {} if num_classes is None else {"num_classes": num_classes}
    model = torchvision.models.get_model(name, weights=None, **head)
    if checkpoint is not None:
        state = _torchvision_keys(name, read_tensors(checkpoint, WEIGHTS, key, prefix))
        load_strict(model, state, checkpoint, f"torchvision model {name!r}")
    return model


def import_class(class_path: str) -> type[nn.Module]:
    """The class named by a dotted path ``"package.module.Class"``; ``ValueError`` naming it when it does not import."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        hint = " (is its folder on PYTHONPATH?)" if isinstance(error, ImportError) else ""
        raise ValueError(f"cannot import classifier class {class_path!r}: {error}{hint}") from None


def _module(class_path: str, init_args: dict | None, checkpoint: str | None, key: str | None, prefix: str | None):
    try:
        model = import_class(class_path)(**(init_args or {}))
    except TypeError as error:
        raise ValueError(f"{class_path}({', '.join(init_args or {})}): {error}") from None
    if checkpoint is not None:
        load_strict(model, read_tensors(checkpoint, WEIGHTS, key, prefix), checkpoint, class_path)
    return model


def _torchscript(path: str) -> nn.Module:
    try:
        return torch.jit.load(str(existing_file(path, "TorchScript classifier")), map_location="cpu")
    except RuntimeError as error:
        raise ValueError(f"{path}: not a TorchScript file ({str(error).splitlines()[0]})") from error


def _source(sources: dict[str, str | None], checkpoint: str | None, init_args: dict | None) -> str:
    """The one source given; ``ValueError`` naming the fields otherwise."""
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ValueError(f"classifier: give exactly one of {', '.join(SOURCES)}; got {given or 'none'}")
    if given[0] == "torchscript" and checkpoint is not None:
        raise ValueError("classifier: a TorchScript file holds its weights; give no checkpoint")
    if init_args is not None and given[0] != "class_path":
        raise ValueError("classifier: init_args go with class_path")
    return given[0]


@validated
def classifier(
    timm: str | None = None,
    torchvision: str | None = None,
    torchscript: str | None = None,
    class_path: str | None = None,
    init_args: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    num_classes: NonNegativeInt | None = None,
    binary_index: NonNegativeInt | None = None,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
    preprocessing: Preprocessing | None = None,
) -> ClassifierWrapper:
    """The classifier to explain (see the module docstring); raises ``ValueError`` / ``FileNotFoundError``
    naming the field or file that is wrong.

    Args:
        timm: a timm model name, e.g. ``resnet50`` or ``convnext_tiny``.
        torchvision: a torchvision model name, e.g. ``resnet50``.
        torchscript: a TorchScript file (``torch.jit.save``) holding the network and its weights.
        class_path: the dotted path of an ``nn.Module`` class, e.g. ``my_package.models.Net``.
        init_args: the keyword arguments of ``class_path``'s constructor.
        checkpoint: a local weights file (safetensors or torch); none: the constructor's own weights
            (random for timm and torchvision).
        num_classes: size of the classification head (default: the architecture's; 0: no head, timm).
        binary_index: explain this one logit as a binary attribute (the output is then ``(B,)``).
        state_dict_key: where the weights sit in a nested checkpoint (e.g. ``model_state_dict``).
        strip_prefix: a key prefix to drop, e.g. ``module.`` or ``model.``.
        preprocessing: resize / crop / normalisation in front of the network (default: the source's own).
    """
    sources = {"timm": timm, "torchvision": torchvision, "torchscript": torchscript, "class_path": class_path}
    source, weights = _source(sources, checkpoint, init_args), (checkpoint, state_dict_key, strip_prefix)
    if source == "timm":
        model = _timm(timm, checkpoint, num_classes, state_dict_key, strip_prefix)
        default = timm_preprocessing(model, timm)
    elif source == "torchvision":
        model, default = _torchvision(torchvision, checkpoint, num_classes, *weights[1:]), IMAGENET_PREPROCESSING
    elif source == "torchscript":
        model, default = _torchscript(torchscript), Preprocessing()
    else:
        model, default = _module(class_path, init_args, *weights), Preprocessing()
    if checkpoint is None and source in ("timm", "torchvision"):
        log.warning("classifier %s %r has random weights: no checkpoint given", source, sources[source])
    return ClassifierWrapper(model, preprocessing or default, binary_index)
