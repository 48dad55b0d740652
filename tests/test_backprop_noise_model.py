"""``backprop_noise_model: false`` (the original's ``backprop_diffusion``): guidance gradients skip the noise model."""

from __future__ import annotations

import pytest
import torch
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.method.config import LDCEConfig
from ldce.method.guided import GuidedNoiseModel, configured_noise_model
from ldce.method.schedule import ddim_grid
from ldce.method.terms import ClassifierGuidance, Task

TARGETS = torch.tensor([1, 3, 5, 7])
INDEX = 9


def _classifier_score(backprop: bool) -> tuple[torch.Tensor, dict]:
    """The classifier term's score alone (no consensus, no renormalisation, weight 1, scale 1): ``ê − e_u``."""
    backbone, classifier = ToyBackbone(), toy_classifier()
    cond, null = backbone.conditioning(TARGETS)
    task, grid = Task(toy_images(4), TARGETS, cond, null), ddim_grid(backbone.alphas_cumprod, 20)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    term = ClassifierGuidance(classifier, 1.0, None, enforce_same_norms=False)
    guided = GuidedNoiseModel(backbone, [term], 1.0, grid, task, backprop_noise_model=backprop)(z, INDEX)
    e_u = backbone.eps(z, grid.timesteps[INDEX].expand(4), null)
    parts = {"backbone": backbone, "classifier": classifier, "z": z, "e_u": e_u, "alpha": grid.alphas[INDEX]}
    return guided.eps - e_u, parts


def test_without_backprop_the_classifier_score_is_the_decoder_and_classifier_vjp_over_sqrt_alpha():
    """``s_c = −√(1−a)·(1/√a)·∂L_c/∂ẑ0`` with ``ẑ0 = (z − √(1−a)·e_u)/√a``, ``L_c = Σ log p(y_t | D(ẑ0))``,
    computed here with ``torch.autograd`` on the decoder and classifier alone; with the noise model's
    Jacobian (the default) the score is a different vector."""
    score, p = _classifier_score(backprop=False)
    alpha = p["alpha"]
    clean_latent = ((p["z"] - (1 - alpha).sqrt() * p["e_u"]) / alpha.sqrt()).requires_grad_(True)
    log_probs = torch.log_softmax(p["classifier"](p["backbone"].decode(clean_latent)), dim=1)
    (vjp,) = torch.autograd.grad(log_probs[torch.arange(4), TARGETS].sum(), clean_latent)
    expected = -(1 - alpha).sqrt() / alpha.sqrt() * vjp
    torch.testing.assert_close(score, expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())
    full, _ = _classifier_score(backprop=True)
    assert (full - expected).abs().max() > 0.05 * expected.abs().max()


def test_backprop_noise_model_is_on_by_default_and_typed():
    """The original's default (``backprop_diffusion: True``); a non-boolean fails naming the field."""
    assert LDCEConfig().backprop_noise_model is True
    with pytest.raises(ValueError, match="^backprop_noise_model must be true or false"):
        LDCEConfig(backprop_noise_model="no")


@pytest.mark.parametrize("halves", ["separate", "joint"])
def test_the_config_switch_reaches_the_noise_model_explain_builds(halves):
    """``LDCEConfig.backprop_noise_model`` is handed to the guided noise model of every path (the one
    ``guided.configured_noise_model`` builds for ``explain`` and ``guided_step``), for both halves modes:
    with it off, no gradient may flow through the noise model."""
    backbone = ToyBackbone()
    cond, null = backbone.conditioning(TARGETS)
    task, grid = Task(toy_images(4), TARGETS, cond, null), ddim_grid(backbone.alphas_cumprod, 20)
    term = ClassifierGuidance(toy_classifier(), 1.0, None, enforce_same_norms=False)
    config = LDCEConfig(backprop_noise_model=False, halves=halves)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    switched = configured_noise_model(config, backbone, [term], grid, task)(z, INDEX).eps
    direct = GuidedNoiseModel(backbone, [term], 3.0, grid, task, backprop_noise_model=False)(z, INDEX).eps
    torch.testing.assert_close(switched, direct, rtol=1e-4, atol=1e-6 * direct.abs().max().item())
