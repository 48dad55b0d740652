"""``CounterfactualModule``: LDCE as a LightningModule whose ``predict_step`` explains a batch (``ldce predict``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from tqdm.auto import tqdm

from ldce.backbones.base import Backbone
from ldce.backbones.speedups import Speedups, apply_speedups
from ldce.checks import validated
from ldce.classifiers.logits import predict
from ldce.classifiers.names import read_class_names
from ldce.classifiers.wrapper import rescale_warning
from ldce.datamodules.batch import Failure, InputBatch
from ldce.method import Counterfactuals, LDCEConfig, explain
from ldce.method.guided import StepRecord
from ldce.method.region import RegionConfig, RegionInputs
from ldce.method.schedule import start_index
from ldce.method.terms import GuidanceTerm
from ldce.method.terms.feature_distance import check_distance_features
from ldce.runner.prediction import Prediction
from ldce.targets import FromSample, TargetPolicy

log = logging.getLogger(__name__)

OnError = Literal["skip", "fail"]


class CounterfactualModule(LightningModule):
    """Latent diffusion counterfactual explanations of ``classifier`` with ``backbone``.

    Args:
        backbone: the latent diffusion model (``ldce.backbones``); frozen, always in eval mode.
        classifier: the classifier to explain: [0, 1] RGB images → logits (``ldce.classifiers``).
        method: LDCE's hyperparameters, named as in the original project.
        seed: the run's seed; with each input's key it seeds that input's noise.
        targets: the target policy (``ldce.targets``); default: the target stored with each sample.
        class_names: class names by index, or a file of them, for records and pictures.
        extra_terms: guidance terms added to the method's own (``ldce.method.terms``).
        record_steps: keep every step's predicted clean image and consensus mask (for step videos).
        step_progress: show a progress bar over the denoising steps of each batch.
        on_error: ``skip`` reports an unusable input (corrupt image, no label, target out of range)
            and goes on; ``fail`` stops the run.
        micro_batch_size: compute the inputs in groups of exactly this many (the last padded): a
            counterfactual is then bitwise the same whatever the batch size and number of processes.
        speedups: the backbone's speed and memory switches; none changes a result beyond round-off.
        region: where the counterfactual may differ from the original (``ldce.method.region``); the
            default ``source: none`` is LDCE as published.
        segmenter: the ``segmentation`` region source's model, e.g. ``ldce.segmenters.clipseg``.
        image_size: the side of the images the data delivers, in pixels; ``ldce predict`` sets it from
            the datamodule and it must equal the backbone's (checked before any work).
        distance_features: the feature extractor of ``method.lp_custom: dino_<loss>`` (the original: DINO
            ViT-B/16), [0, 1] RGB images → features, e.g. ``ldce.classifiers.features.feature_extractor``
            with ``kind: timm:vit_base_patch16_224.dino``; only with such an ``lp_custom``.
    """

    @validated
    def __init__(
        self,
        backbone: Backbone,
        classifier: nn.Module,
        method: LDCEConfig = LDCEConfig(),
        seed: int = 0,
        targets: TargetPolicy | None = None,
        class_names: list[str] | str | None = None,
        extra_terms: Sequence[GuidanceTerm] = (),
        record_steps: bool = False,
        step_progress: bool = True,
        on_error: OnError = "skip",
        micro_batch_size: PositiveInt | None = None,
        speedups: Speedups = Speedups(),
        region: RegionConfig = RegionConfig(),
        segmenter: nn.Module | None = None,
        image_size: PositiveInt | None = None,
        distance_features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_distance_features(
            method.lp_custom, distance_features, "model.method.lp_custom", "model.distance_features"
        )
        if image_size is not None and image_size != backbone.image_size:
            raise ValueError(
                f"data.image_size is {image_size}, but the backbone works on {backbone.image_size}×"
                f"{backbone.image_size} images: set data.image_size {backbone.image_size}"
            )
        self.backbone = apply_speedups(backbone.eval().requires_grad_(False), speedups)
        self.classifier = classifier.eval().requires_grad_(False)
        if (warning := rescale_warning(classifier, backbone.image_size)) is not None:
            log.warning(warning)
        self.method, self.seed = method, seed
        self.targets = targets or FromSample()
        self.class_names = read_class_names(class_names)
        self.extra_terms = list(extra_terms)
        self.record_steps, self.step_progress = record_steps, step_progress
        self.on_error, self.micro_batch_size = on_error, micro_batch_size
        if region.source == "segmentation" and segmenter is None:
            raise ValueError("model.region.source segmentation needs model.segmenter (ldce.segmenters.clipseg)")
        self.region, self.segmenter = region, segmenter
        self.distance_features = None if distance_features is None else distance_features.eval().requires_grad_(False)

    def on_predict_start(self) -> None:
        """Check, before any input is explained, that the class names and the target policy fit the
        classifier's outputs (one forward pass on a black image)."""
        side = self.backbone.image_size
        with torch.no_grad():
            logits = self.classifier(torch.zeros(1, 3, side, side, device=self.device))
        num_classes = 2 if logits.ndim == 1 else logits.shape[1]
        if self.class_names is not None and len(self.class_names) != num_classes:
            raise ValueError(
                f"model.class_names has {len(self.class_names)} names, but the classifier gives {num_classes} classes"
            )
        self.targets.check(num_classes)

    def transfer_batch_to_device(self, batch: InputBatch, device: torch.device, dataloader_idx: int) -> InputBatch:
        """Only the images go to the accelerator; labels, targets and keys are used on the CPU."""
        return replace(batch, images=batch.images.to(device))

    def predict_step(self, batch: InputBatch, batch_idx: int = 0) -> Prediction:
        """Explain the usable inputs of ``batch``; pass its failures and skipped keys through."""
        for failure in batch.failures:
            log.warning("cannot explain %s (recorded as failed): %s", failure.key, failure.reason)
        failures = list(batch.failures)
        classes = self._classes(batch, failures)
        if failures and self.on_error == "fail":
            raise RuntimeError(f"unusable inputs (on_error=fail): {failures[0].key}: {failures[0].reason}")
        keep = (classes.targets >= 0).nonzero().squeeze(1).tolist()
        result = self._explain(batch, classes, keep) if keep else None
        return Prediction(
            keys=[batch.keys[i] for i in keep],
            meta=[batch.meta[i] for i in keep],
            shards=[batch.shards[i] for i in keep],
            original_keys=[batch.original_keys[i] for i in keep],
            labels=classes.sources[keep],
            targets=classes.targets[keep],
            source_predicted=classes.source_predicted[keep],
            already_target=classes.already_target[keep],
            input_labels=batch.labels[keep].cpu(),
            input_targets=batch.targets[keep].cpu(),
            originals=batch.images[keep].float().cpu(),
            result=None if result is None else result.cpu(),
            class_names=self.class_names,
            seed=self.seed,
            failures=failures,
            skipped=list(batch.skipped),
        )

    def _explain(self, batch: InputBatch, classes: Classes, keep: list[int]) -> Counterfactuals:
        """The counterfactuals of the inputs ``keep`` of ``batch``."""
        images, targets, keys = batch.images[keep], classes.targets[keep], [batch.keys[i] for i in keep]
        masks = None if batch.masks is None else batch.masks[keep]
        region = RegionInputs(self.region, masks, self.segmenter, classes.sources[keep])
        size = self.micro_batch_size or len(keys)
        steps = -(-len(keys) // size) * start_index(self.method.strength, self.method.ddim_steps)
        show = self.step_progress and steps > 0 and (self._trainer is None or self.trainer.is_global_zero)
        with tqdm(
            total=steps, desc=f"denoising {len(keys)} inputs", leave=False, position=1, disable=None if show else True
        ) as bar:
            return explain(
                images,
                targets,
                self.backbone,
                self.classifier,
                self.method,
                self.seed,
                keys,
                callback=_advance(bar),
                micro_batch_size=self.micro_batch_size,
                extra_terms=self.extra_terms,
                record_steps=self.record_steps,
                region=region,
                distance_features=self.distance_features,
            )

    def _unmasked(self, batch: InputBatch, targets: Tensor) -> list[tuple[int, str]]:
        """The inputs still to explain whose mask, which the ``given`` region source needs, is missing or
        lets nothing change, each with the reason."""
        if self.region.source != "given":
            return []
        masks = [None if batch.masks is None else batch.masks[i] for i in range(len(batch.keys))]
        reasons = [_mask_problem(mask, self.region.threshold) for mask in masks]
        return [(i, reason) for i, reason in enumerate(reasons) if reason and targets[i] >= 0]

    def _classes(self, batch: InputBatch, failures: list[Failure]) -> Classes:
        """Each input's source (its label, or the classifier's prediction where it has none), its target
        from the policy (−1 where there is none or it is out of range: then it is failed) and whether the
        classifier already calls it the target."""
        with torch.no_grad():
            logits = self.classifier(batch.images).cpu() if batch.keys else torch.zeros(0, 2)
        predicted = predict(logits)
        labels = batch.labels.cpu()
        sources = torch.where(labels < 0, predicted, labels)
        num_classes = 2 if logits.ndim == 1 else logits.shape[1]
        sources = torch.where(labels >= num_classes, -1, sources)
        targets = self.targets(batch.keys, sources, batch.targets.cpu(), batch.indices.cpu(), logits)
        targets = torch.where(sources < 0, -1, targets)
        for i in ((targets < 0) | (targets >= num_classes)).nonzero().squeeze(1).tolist():
            reason = _unusable(int(labels[i]), int(targets[i]), num_classes, self.targets)
            log.warning("cannot explain %s (recorded as failed): %s", batch.keys[i], reason)
            failures.append(Failure(batch.keys[i], reason, batch.shards[i]))
        targets = torch.where(targets >= num_classes, -1, targets)
        for i, reason in self._unmasked(batch, targets):
            log.warning("cannot explain %s (recorded as failed): %s", batch.keys[i], reason)
            failures.append(Failure(batch.keys[i], reason, batch.shards[i]))
            targets[i] = -1
        return Classes(sources, targets, labels < 0, predicted == targets)


NO_MASK = "no region mask (mask.png or a box in the shard sample, <name>.mask.png beside a file)"
EMPTY_MASK = "its region mask lets nothing change (no pixel at or above model.region.threshold)"


def _mask_problem(mask: Tensor | None, threshold: float) -> str:
    """Why a ``given`` region mask ``(1, H, W)`` in [0, 1] (NaN: none came) cannot be used; ``""`` if it can."""
    if mask is None or bool(mask.isnan().any()):
        return NO_MASK
    return "" if bool((mask >= threshold).any()) else EMPTY_MASK


def _unusable(label: int, target: int, num_classes: int, policy: TargetPolicy) -> str:
    """Why an input with ``label`` and ``policy``'s ``target`` cannot be explained by a ``num_classes`` classifier."""
    if label >= num_classes:
        return f"label {label} outside the classifier's classes [0, {num_classes})"
    return policy.missing(label) if target < 0 else f"target {target} outside [0, {num_classes})"


@dataclass(frozen=True)
class Classes:
    """Per input of a batch, int64/bool ``(B,)``: source class, target class (−1: none), whether the
    source is the classifier's prediction (the input had no label) and whether the classifier already
    predicts the target on the original."""

    sources: Tensor
    targets: Tensor
    source_predicted: Tensor
    already_target: Tensor


def _advance(bar: tqdm):
    """A step callback that moves ``bar`` by one step."""

    def on_step(record: StepRecord) -> None:
        bar.update(1)

    return on_step
