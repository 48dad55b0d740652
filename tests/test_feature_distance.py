"""The distance term in a feature space (``lp_custom: dino_<loss>``): it pulls x̂0's features towards the original's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.classifiers import classifier as load_classifier
from ldce.classifiers.features import feature_extractor
from ldce.method.config import LDCEConfig
from ldce.method.guided import GuidedNoiseModel, ldce_terms, predicted_clean_latent
from ldce.method.schedule import ddim_grid
from ldce.method.terms import DistanceGuidance, FeatureDistanceGuidance, Task
from ldce.method.terms.feature_distance import feature_loss
from ldce.pipeline import LDCEPipeline

LOSSES = ("cossim", "1", "2")
VIT = "timm.models.vision_transformer.VisionTransformer"


def vit_args(image_size: int) -> dict:
    """A tiny timm ViT (one block, 16-d class token, no head) for ``image_size``-pixel images."""
    return {"img_size": image_size, "patch_size": image_size // 2, "embed_dim": 16, "depth": 1, "num_heads": 2}


def save_tiny_vit(path: Path, image_size: int) -> Path:
    """A random tiny ViT's weights in a local safetensors file (built from its config: no download)."""
    torch.manual_seed(4)
    save_file(VisionTransformer(**vit_args(image_size), num_classes=0).state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> torch.nn.Module:
    """The tiny ViT loaded as the classifier loaders load any module: [0, 1] images → ``(B, 16)``."""
    path = save_tiny_vit(tmp_path_factory.mktemp("vit") / "vit.safetensors", 8)
    init_args = {**vit_args(8), "num_classes": 0}
    return load_classifier(class_path=VIT, init_args=init_args, checkpoint=str(path)).eval().requires_grad_(False)


def _task(backbone: ToyBackbone) -> Task:
    targets = torch.tensor([1, 3, 5, 7])
    return Task(toy_images(4), targets, *backbone.conditioning(targets))


def test_loss_identifiers_measure_as_documented():
    """cossim: 1 − cos (orthogonal → 1, opposite → 2); 1: mean |Δ|; 2: mean Δ²; per sample."""
    f = torch.tensor([[1.0, 0.0], [1.0, 3.0], [2.0, 2.0]])
    ref = torch.tensor([[0.0, 1.0], [0.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(feature_loss(f, ref, "cossim")[[0, 2]], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(feature_loss(f, ref, "1"), torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(feature_loss(f, ref, "2"), torch.tensor([1.0, 5.0, 9.0]))


@pytest.mark.parametrize("loss", LOSSES)
def test_the_gradient_is_zero_when_the_prediction_is_the_original(extractor, loss):
    """At x̂0 = x the features agree: the loss is 0 and so is its gradient (a minimum)."""
    backbone = ToyBackbone()
    task = _task(backbone)
    term = FeatureDistanceGuidance(extractor, loss, 1.0, enforce_same_norms=False)
    features = extractor(task.images)
    assert feature_loss(features, features, loss).abs().max() < 1e-6
    assert term.image_gradient(task.images, task).gradient.abs().max() < 1e-6


@pytest.mark.parametrize("loss", LOSSES)
def test_a_small_step_against_the_image_gradient_shrinks_the_feature_distance(extractor, loss):
    """For each sample, ``ℓ(F(x̂0 − η·g), F(x)) < ℓ(F(x̂0), F(x))`` with ``g = ∂L_f/∂x̂0``."""
    task = _task(ToyBackbone())
    image = (task.images + 0.3 * torch.randn(task.images.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    term = FeatureDistanceGuidance(extractor, loss, 1.0, enforce_same_norms=False)
    gradient = term.image_gradient(image, task).gradient
    step = 1e-2 / gradient.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    reference = extractor(task.images)
    before = feature_loss(extractor(image), reference, loss)
    after = feature_loss(extractor((image - step * gradient).clamp(0, 1)), reference, loss)
    assert torch.all(after < before)


def test_the_term_moves_the_predicted_image_towards_the_originals_features(extractor):
    """The guided noise of the feature term alone gives an ``ẑ0`` whose image is closer in features than
    the unguided ``ẑ0`` (the score's sign: −λd·s_f decreases the loss)."""
    backbone = ToyBackbone()
    task, grid, index = _task(backbone), ddim_grid(backbone.alphas_cumprod, 20), 9
    z = backbone.encode(task.images) + 0.5 * torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(6))
    term = FeatureDistanceGuidance(extractor, "2", 1.0, enforce_same_norms=True)
    guided = GuidedNoiseModel(backbone, [term], 0.05, grid, task)(z, index)
    e_u = backbone.eps(z, grid.timesteps[index].expand(4), task.null)
    reference = extractor(task.images)

    def distance(eps: torch.Tensor) -> torch.Tensor:
        image = backbone.decode(predicted_clean_latent(z, eps, grid.alphas[index])).clamp(0, 1)
        return feature_loss(extractor(image), reference, "2")

    assert torch.all(distance(guided.eps) < distance(e_u))


def test_lp_custom_picks_the_pixel_or_the_feature_term_and_refuses_a_missing_extractor(extractor):
    """1 / 2 → pixel distance; dino_<loss> → the feature term with that loss; dino_* without an
    extractor or an unknown identifier fails naming the field."""
    classifier = toy_classifier()
    assert isinstance(ldce_terms(LDCEConfig(lp_custom=2), classifier)[1], DistanceGuidance)
    for loss in LOSSES:
        term = ldce_terms(LDCEConfig(lp_custom=f"dino_{loss}"), classifier, extractor)[1]
        assert isinstance(term, FeatureDistanceGuidance) and term.loss == loss
    with pytest.raises(ValueError, match="lp_custom 'dino_cossim' .* needs distance_features"):
        ldce_terms(LDCEConfig(lp_custom="dino_cossim"), classifier)
    with pytest.raises(ValueError, match="^lp_custom must be one of"):
        LDCEConfig(lp_custom="dino_3")


def test_the_pipeline_takes_the_extractor_and_refuses_a_feature_distance_without_one(extractor):
    """``LDCEPipeline(..., distance_features=F)`` guides with the feature term (its counterfactuals differ
    from the pixel distance's); ``dino_*`` without ``F`` fails at construction naming both fields."""
    backbone, classifier, images = ToyBackbone(), toy_classifier(), toy_images(2)
    method = {"ddim_steps": 20, "strength": 0.3}
    features = LDCEPipeline(backbone, classifier, LDCEConfig(**method, lp_custom="dino_2"), distance_features=extractor)
    pixels = LDCEPipeline(backbone, classifier, LDCEConfig(**method, lp_custom=2))
    assert not torch.allclose(features(images, [1, 2], "pt").images, pixels(images, [1, 2], "pt").images)
    with pytest.raises(ValueError, match="config.lp_custom 'dino_2' .* needs distance_features"):
        LDCEPipeline(backbone, classifier, LDCEConfig(lp_custom="dino_2"))


def test_a_missing_extractor_file_is_named_as_the_feature_extractors_not_the_classifiers(tmp_path):
    with pytest.raises(FileNotFoundError, match="^feature extractor 'timm:vit_tiny_patch16_224' weights not found"):
        feature_extractor("timm:vit_tiny_patch16_224", str(tmp_path / "dino.pth"))
