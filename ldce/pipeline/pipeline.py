"""``LDCEPipeline``: counterfactual explanations in Python, in the manner of a diffusers pipeline.

::

    pipe = LDCEPipeline.from_config("quickstart")          # a config that ships with ldce, or a YAML path
    out = pipe(images, targets="Coat", output_type="pil", seed=0)
    out.images[0].save("coat.png"); out.flipped, out.target_probabilities

1. check and convert the inputs (:mod:`ldce.pipeline.inputs`): images to ``(B, 3, S, S)`` in [0, 1],
   targets to class indices within the classifier's classes;
2. :func:`ldce.method.explain` with the pipeline's backbone, classifier and :class:`LDCEConfig`;
3. the counterfactuals as ``output_type``: PIL images, a float32 tensor ``(B, 3, S, S)`` (``pt``) or a
   float32 array ``(B, S, S, 3)`` (``np``), in [0, 1], with the classifier's facts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from jsonargparse import ArgumentParser
from jsonargparse.typing import PositiveInt
from PIL import Image
from torch import Tensor, nn

import ldce
from ldce.backbones.base import Backbone
from ldce.backbones.speedups import Speedups, apply_speedups
from ldce.classifiers.logits import predict
from ldce.classifiers.names import read_class_names
from ldce.classifiers.wrapper import rescale_warning
from ldce.compat.legacy import migrate_config
from ldce.images import to_uint8
from ldce.method import Counterfactuals, LDCEConfig, explain
from ldce.method.region import RegionConfig, RegionInputs
from ldce.method.terms.feature_distance import check_distance_features
from ldce.pipeline.inputs import as_images, as_targets

log = logging.getLogger(__name__)

OutputType = Literal["pil", "pt", "np"]
CONFIG_FIELDS = (
    "backbone",
    "classifier",
    "method",
    "class_names",
    "speedups",
    "micro_batch_size",
    "region",
    "segmenter",
    "distance_features",
)


@dataclass(frozen=True)
class LDCEPipelineOutput:
    """One call's counterfactuals and what the classifier makes of them (``B`` images).

    images: ``B`` PIL images, a float32 tensor ``(B, 3, S, S)`` or a float32 array ``(B, S, S, 3)``, in
    [0, 1]; targets / source_predictions / predictions: class indices (the target, the classifier on the
    original and on the counterfactual); target_probabilities: ``p(target | x_cf)``; flipped: the
    classifier now says the target; counterfactuals: everything :func:`ldce.method.explain` returns
    (latents, L1/L2, consensus, per-step trace), on the CPU.
    """

    images: list[Image.Image] | Tensor | np.ndarray
    targets: list[int]
    source_predictions: list[int]
    predictions: list[int]
    target_probabilities: list[float]
    flipped: list[bool]
    counterfactuals: Counterfactuals


def _config_path(config: str | Path) -> Path:
    """A config file, or the file of a config that ships with ldce (``quickstart`` or ``quickstart.yaml``)."""
    if not isinstance(config, (str, Path)):
        raise ValueError(f"config must be a path or a config name, got {type(config).__name__}")
    if Path(config).is_file():
        return Path(config)
    try:
        return ldce.shipped_config(str(config))
    except LookupError as error:
        raise FileNotFoundError(f"config {error}") from None


def _model_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--backbone", type=Backbone)
    parser.add_argument("--classifier", type=nn.Module)
    parser.add_argument("--method", type=LDCEConfig, default=LDCEConfig())
    parser.add_argument("--class_names", type=list[str] | str | None, default=None)
    parser.add_argument("--speedups", type=Speedups, default=Speedups())
    parser.add_argument("--micro_batch_size", type=PositiveInt | None, default=None)
    parser.add_argument("--region", type=RegionConfig, default=RegionConfig())
    parser.add_argument("--segmenter", type=nn.Module | None, default=None)
    parser.add_argument("--distance_features", type=nn.Module | None, default=None)
    return parser


class LDCEPipeline:
    """LDCE with a backbone, a classifier and a configuration (see the module docstring).

    Args:
        backbone: the latent diffusion model (:class:`ldce.backbones.base.Backbone`).
        classifier: the classifier to explain, on [0, 1] RGB images (e.g. :func:`ldce.classifiers.classifier`).
        config: LDCE's hyperparameters (default: the paper's ImageNet values).
        class_names: names by class index (a list or a file of them), for targets given by name; their
            number must be the classifier's (checked on the first call).
        micro_batch_size: compute in groups of this many (a counterfactual then does not depend on the
            batch it arrives in).
        region: where the counterfactuals may differ from the originals (``ldce.method.region``;
            default: anywhere, LDCE as published); ``given`` takes the ``masks`` of each call.
        segmenter: the ``segmentation`` region source's model (``ldce.segmenters.clipseg``).
        distance_features: the feature extractor of ``lp_custom: dino_<loss>`` (``ValueError`` when one is
            given without the other).
    """

    def __init__(
        self,
        backbone: Backbone,
        classifier: nn.Module,
        config: LDCEConfig | None = None,
        class_names: list[str] | str | None = None,
        micro_batch_size: int | None = None,
        region: RegionConfig | None = None,
        segmenter: nn.Module | None = None,
        distance_features: nn.Module | None = None,
    ) -> None:
        for name, value, kind, expected in (
            ("backbone", backbone, Backbone, "a Backbone"),
            ("classifier", classifier, nn.Module, "a Module"),
            ("segmenter", segmenter, nn.Module | None, "a Module or None"),
            ("distance_features", distance_features, nn.Module | None, "a Module or None"),
        ):
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be {expected}, got {type(value).__name__}")
        if config is not None and not isinstance(config, LDCEConfig):
            raise ValueError(f"config must be an LDCEConfig, got {type(config).__name__}")
        self.backbone = backbone.eval().requires_grad_(False)
        self.classifier = classifier.eval()
        self.config = config or LDCEConfig()
        self.class_names, self.micro_batch_size = read_class_names(class_names), micro_batch_size
        self.region, self.segmenter = region or RegionConfig(), segmenter
        check_distance_features(self.config.lp_custom, distance_features, "config.lp_custom", "distance_features")
        self.distance_features = None if distance_features is None else distance_features.eval().requires_grad_(False)
        if (warning := rescale_warning(classifier, backbone.image_size)) is not None:
            log.warning(warning)

    @classmethod
    def from_config(cls, config: str | Path) -> LDCEPipeline:
        """The model of an ``ldce predict`` config: a file, or the name of a config that ships with ldce
        (``quickstart``). Its ``backbone``, ``classifier``, ``method``, ``class_names``, ``speedups``,
        ``micro_batch_size``, ``region``, ``segmenter`` and ``distance_features`` are used; data, targets and
        outputs are the caller's."""
        model = migrate_config(yaml.safe_load(_config_path(config).read_text()) or {})[0].get("model") or {}
        parser = _model_parser()
        parsed = parser.instantiate(parser.parse_object({k: v for k, v in model.items() if k in CONFIG_FIELDS}))
        backbone = apply_speedups(parsed.backbone, parsed.speedups)
        names = read_class_names(parsed.class_names)
        return cls(
            backbone,
            parsed.classifier,
            parsed.method,
            names,
            parsed.micro_batch_size,
            parsed.region,
            parsed.segmenter,
            parsed.distance_features,
        )

    def to(self, device: str | torch.device) -> LDCEPipeline:
        """Move the backbone and the classifier to ``device``; returns the pipeline."""
        self.backbone.to(device)
        self.classifier.to(device)
        if self.distance_features is not None:
            self.distance_features.to(device)
        return self

    def __call__(
        self, images: Any, targets: Any, output_type: OutputType = "pil", seed: int = 0, masks: Tensor | None = None
    ) -> LDCEPipelineOutput:
        """Counterfactuals of ``images`` towards ``targets`` (see :mod:`ldce.pipeline.inputs` for what both
        accept); each image's randomness comes from ``seed`` and its position. ``masks``: the ``given``
        region of each image, ``(B, 1, H, W)`` in [0, 1] at the backbone's side (white: may change). Raises
        ``ValueError`` naming the argument that is wrong."""
        if output_type not in ("pil", "pt", "np"):
            raise ValueError(f"output_type must be 'pil', 'pt' or 'np', got {output_type!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {type(seed).__name__}")
        pixels = as_images(images, self.backbone.image_size)
        with torch.no_grad():
            logits = self.classifier(pixels.to(self.backbone.device))
        num_classes = 2 if logits.ndim == 1 else logits.shape[1]
        if self.class_names is not None and len(self.class_names) != num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names; the classifier gives {num_classes}")
        classes = as_targets(targets, len(pixels), self.class_names, num_classes)
        if masks is not None and self.region.source != "given":
            raise ValueError(f"masks are the 'given' region source's; this pipeline's region is {self.region.source!r}")
        region = RegionInputs(self.region, masks, self.segmenter, predict(logits))
        result = explain(
            pixels,
            classes,
            self.backbone,
            self.classifier,
            self.config,
            seed,
            micro_batch_size=self.micro_batch_size,
            region=region,
            distance_features=self.distance_features,
        ).cpu()
        return LDCEPipelineOutput(
            images=_as_output(result.images, output_type),
            targets=classes.tolist(),
            source_predictions=predict(logits).cpu().tolist(),
            predictions=result.prediction.tolist(),
            target_probabilities=result.target_confidence.tolist(),
            flipped=(result.prediction == classes).tolist(),
            counterfactuals=result,
        )


def _as_output(images: Tensor, output_type: OutputType) -> list[Image.Image] | Tensor | np.ndarray:
    """``(B, 3, S, S)`` float32 in [0, 1] as PIL images (8-bit), the tensor itself, or ``(B, S, S, 3)`` floats."""
    if output_type == "pt":
        return images
    if output_type == "np":
        return images.permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(to_uint8(image)) for image in images]
