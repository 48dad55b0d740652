"""The distance term measured in a feature space (the original's ``lp_custom: dino_<loss>``).

f = F(clamp(x̂0, 0, 1)),   f_x = F(x)                   (B, D): features of a frozen extractor F
L_f = ℓ(f, f_x)                                          (B,), summed over the batch
s_f = −√(1 − a)·∂L_f/∂z
s_f ← s_f·|d|/|s_f|                                      (enforce_same_norms)
score = −λd·s_f

with ``ℓ`` one of the original's loss identifiers: ``cossim`` ``1 − cos(f, f_x)``, ``1`` the mean
absolute difference and ``2`` the mean squared difference over the ``D`` features.

The original (``DinoLoss`` in ``ldm/models/diffusion/cc_ddim.py``) uses DINO ViT-B/16 from torch hub,
whose output is the final-norm class token, ``D = 768``. It means to give DINO both images as
ImageNet-normalised 224×224 centre crops but measures two different views: ``x̂0`` enters DINO as
``[0, 1]`` pixels at full resolution, unnormalised (the cropped, normalised copy is computed and then
discarded), while ``x`` is mapped once more from ``[−1, 1]`` to ``[0, 1]`` (``x ↦ (x + 1)/2``, though
it already lies in [0, 1]) before the crop and normalisation. Its ``1`` and ``2`` average over the
batch too (a ``1/B`` factor; ``cossim`` likewise), which ``enforce_same_norms`` removes. Here both
images pass the extractor's own preprocessing (the classifier-loader convention: [0, 1] RGB in, the
wrapper resizes, crops and normalises) — for DINO through timm, the 224 centre crop with ImageNet
statistics that the original intended — and the loss is per sample. (timm's DINO configuration
first resizes the shorter side to 248, crop_pct 0.9; ``ldce.classifiers.classifier(timm=
"vit_base_patch16_224.dino", checkpoint=…, num_classes=0, preprocessing=Preprocessing(crop=224,
mean=IMAGENET_MEAN, std=IMAGENET_STD))`` crops a 256-pixel image exactly as the original meant to.)
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldce.method.consensus import match_norm
from ldce.method.terms.base import GuidanceTerm, ImageGradient, StepInputs, Task, TermOutput
from ldce.method.terms.distance import DistanceGuidance
from ldce.method.vjp import scaled_vjp

FeatureLoss = Literal["cossim", "1", "2"]
FEATURE_LOSSES: tuple[str, ...] = get_args(FeatureLoss)
PREFIX = "dino_"


def feature_loss(features: Tensor, reference: Tensor, loss: FeatureLoss) -> Tensor:
    """``ℓ(f, f_x)`` per sample: ``(B, …) × (B, …) → (B,)`` (features flattened to ``(B, D)``).

    ``cossim``: ``1 − ⟨f, f_x⟩ / (|f| |f_x|)`` in [0, 2]; ``1``: ``mean |f − f_x|``; ``2``:
    ``mean (f − f_x)²``. Raises ``ValueError`` for another identifier.
    """
    features, reference = features.flatten(1), reference.flatten(1)
    if loss == "cossim":
        return 1.0 - F.cosine_similarity(features, reference, dim=1)
    if loss == "1":
        return (features - reference).abs().mean(1)
    if loss == "2":
        return (features - reference).square().mean(1)
    raise ValueError(f"unknown feature loss {loss!r}; expected one of {FEATURE_LOSSES}")


class FeatureDistanceGuidance(GuidanceTerm):
    """``−λd·s_f``: away from growing the feature distance to the original (module docstring).

    Args:
        extractor: ``F``, frozen: [0, 1] RGB images ``(B, 3, H, W)`` → features ``(B, D)`` (or any
            ``(B, …)``), differentiable; e.g. ``ldce.classifiers.features.feature_extractor(
            "timm:vit_base_patch16_224.dino", "dino_vitbase16_pretrain.pth")``.
        loss: ``cossim``, ``1`` or ``2`` (the ``<loss>`` of the original's ``dino_<loss>``).
        weight: ``λd`` (``sampler.dist_lambda``).
        enforce_same_norms: rescale the score to ``|d|`` per sample before weighting.
    """

    needs_gradient = True

    def __init__(self, extractor: nn.Module, loss: FeatureLoss, weight: float, enforce_same_norms: bool) -> None:
        if loss not in FEATURE_LOSSES:
            raise ValueError(f"unknown feature loss {loss!r}; expected one of {FEATURE_LOSSES}")
        self.extractor, self.loss = extractor, loss
        self.weight, self.enforce_same_norms = weight, enforce_same_norms
        self._reference: tuple[Tensor, Tensor] | None = None

    def reference_features(self, originals: Tensor) -> Tensor:
        """``F(x)`` ``(B, D)`` float32, computed once per batch of originals (all steps share it)."""
        if self._reference is None or self._reference[0] is not originals:
            with torch.no_grad():
                self._reference = (originals, self.extractor(originals).float())
        return self._reference[1]

    def image_gradient(self, image: Tensor, task: Task) -> ImageGradient:
        """``∂L_f/∂x̂0`` ``(B, 3, H, W)`` float32; ``∂ℓ/∂f`` in float32, carried back by ``scaled_vjp``."""
        reference = self.reference_features(task.images)
        probe = image.detach().float().requires_grad_(True)
        features = self.extractor(probe.clamp(0.0, 1.0))
        scores = features.detach().float().requires_grad_(True)
        (grad_features,) = torch.autograd.grad(feature_loss(scores, reference, self.loss).sum(), scores)
        return ImageGradient(scaled_vjp(features, probe, grad_features[None])[0])

    def score(self, inputs: StepInputs, latent_gradient: Tensor | None) -> TermOutput:
        score = inputs.score_scale * latent_gradient
        if self.enforce_same_norms:
            score = match_norm(score, inputs.implicit)
        return TermOutput(-self.weight * score)


def distance_term(
    lp_custom: int | str, weight: float, enforce_same_norms: bool, extractor: nn.Module | None
) -> GuidanceTerm:
    """The distance term of ``lp_custom``: 1 / 2 → pixel L1 / squared L2 (:class:`DistanceGuidance`);
    ``dino_<loss>`` → :class:`FeatureDistanceGuidance` with ``extractor`` (``ValueError`` without one)."""
    if isinstance(lp_custom, int):
        return DistanceGuidance(lp_custom, weight, enforce_same_norms)
    check_distance_features(lp_custom, extractor)
    return FeatureDistanceGuidance(extractor, lp_custom.removeprefix(PREFIX), weight, enforce_same_norms)


def check_distance_features(
    lp_custom: int | str,
    extractor: nn.Module | None,
    field: str = "lp_custom",
    features_field: str = "distance_features",
) -> None:
    """``ValueError`` naming both fields when a feature distance lacks its extractor or an extractor is
    given for a pixel distance (where it would go unused)."""
    if isinstance(lp_custom, str) and extractor is None:
        raise ValueError(f"{field} {lp_custom!r} measures distance in a feature space: it needs {features_field}")
    if isinstance(lp_custom, int) and extractor is not None:
        raise ValueError(f"{features_field} is used only with {field} dino_<loss>; {field} is {lp_custom}")
