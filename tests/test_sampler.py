"""Properties of the guided DDIM step, the loop and explain() on a toy backbone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import DDIMScheduler
from tolerance import assert_close_to_scale
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.guided import predicted_clean_latent
from ldce.method.sampler import guided_step
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task

TARGETS = torch.tensor([1, 3, 5, 7])


@pytest.fixture(scope="module")
def backbone():
    return ToyBackbone()


@pytest.fixture(scope="module")
def classifier():
    return toy_classifier()


def _task(backbone, n=4):
    images = toy_images(n)
    cond, null = backbone.conditioning(TARGETS[:n])
    return Task(images, TARGETS[:n], cond, null)


@pytest.mark.parametrize("index", [0, 7, 19])
def test_free_guidance_step_equals_diffusers_ddim_step(backbone, classifier, index):
    """guidance=free is classifier-free guidance followed by diffusers' DDIMScheduler.step (η = 0)."""
    config = LDCEConfig(ddim_steps=20, guidance="free", scale=3.0)
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    z_prev, _ = guided_step(backbone, classifier, z, index, grid, task, config)

    scheduler = DDIMScheduler(num_train_timesteps=1000, set_alpha_to_one=False, steps_offset=1, clip_sample=False)
    scheduler.alphas_cumprod = backbone.alphas_cumprod.clone()
    scheduler.final_alpha_cumprod = backbone.alphas_cumprod[0]
    scheduler.set_timesteps(20)
    t = grid.timesteps[index]
    assert t in scheduler.timesteps
    e_u = backbone.eps(z, t.expand(4), task.null)
    eps = e_u + 3.0 * (backbone.eps(z, t.expand(4), task.cond) - e_u)
    expected = scheduler.step(eps, int(t), z, eta=0.0).prev_sample
    torch.testing.assert_close(z_prev, expected, rtol=0, atol=1e-6)


def test_classifier_score_is_the_gradient_of_the_target_log_likelihood(backbone, classifier):
    """Without consensus, norms or distance: ê − e_u = −scale·λc·√(1−a)·∂/∂z Σ log p(y_t | x̂0(z))."""
    config = LDCEConfig(
        ddim_steps=20,
        guidance="unprojected",
        enforce_same_norms=False,
        dist_lambda=0.0,
        classifier_lambda=1.0,
        scale=1.0,
    )
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    index, alpha = 9, grid.alphas[9]
    z_prev, _ = guided_step(backbone, classifier, z, index, grid, task, config)

    leaf = z.clone().requires_grad_(True)
    t = grid.timesteps[index].expand(4)
    e_u = backbone.eps(leaf, t, task.null)
    image = backbone.decode(predicted_clean_latent(leaf, e_u, alpha))
    log_p = torch.log_softmax(classifier(image), 1).gather(1, TARGETS[:, None]).sum()
    (grad,) = torch.autograd.grad(log_p, leaf)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    eps = e_u.detach() - torch.sqrt(1 - alpha) * grad
    expected = (
        grid.alphas_prev[index].sqrt() * predicted_clean_latent(z, eps, alpha)
        + torch.sqrt(1 - grid.alphas_prev[index]) * eps
    )
    torch.testing.assert_close(z_prev, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("halves", "expected"),
    [
        ("separate", [("decode", True), ("eps", False), ("eps", True)]),
        ("joint", [("decode", True), ("eps", True)]),
    ],
)
def test_one_graph_per_step_conditional_half_without_graph(backbone, classifier, monkeypatch, halves, expected):
    """Per step, separate halves: the conditional eps runs without autograd, the unconditional one and the
    decoder once each in the graph; joint halves: one eps call (on 2B) and the decoder, in the graph."""
    calls = []
    for name in ("eps", "decode"):
        original = getattr(ToyBackbone, name)

        def spy(self, *args, _name=name, _original=original):
            calls.append((_name, torch.is_grad_enabled()))
            return _original(self, *args)

        monkeypatch.setattr(ToyBackbone, name, spy)
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone)
    config = LDCEConfig(ddim_steps=20, halves=halves)
    guided_step(backbone, classifier, torch.randn(4, 4, 4, 4), 5, grid, task, config)
    assert sorted(calls) == expected


def test_strength_zero_returns_the_decoded_encoding(backbone, classifier):
    images = toy_images(4)
    result = explain(images, TARGETS, backbone, classifier, LDCEConfig(strength=0.0, ddim_steps=20))
    expected = backbone.decode(backbone.encode(images)).clamp(0, 1)
    torch.testing.assert_close(result.images, expected, rtol=0, atol=0)


def test_a_sample_does_not_depend_on_its_batch(backbone, classifier):
    """Given its key, a sample's counterfactual is the same alone, in a batch, and in another order."""
    config = LDCEConfig(strength=0.5, ddim_steps=20, ddim_eta=0.5)
    images, keys = toy_images(4), ["a", "b", "c", "d"]
    batch = explain(images, TARGETS, backbone, classifier, config, seed=3, keys=keys)
    alone = explain(images[2:3], TARGETS[2:3], backbone, classifier, config, seed=3, keys=["c"])
    order = [3, 1, 0, 2]
    shuffled = explain(
        images[order], TARGETS[order], backbone, classifier, config, seed=3, keys=[keys[i] for i in order]
    )
    assert_close_to_scale(alone.latents[0], batch.latents[2], rel=1e-6, rtol=1e-5)
    assert_close_to_scale(shuffled.latents, batch.latents[order], rel=1e-6, rtol=1e-5)


def test_seed_and_key_decide_the_noise(backbone, classifier):
    config = LDCEConfig(strength=0.5, ddim_steps=20)
    images = toy_images(1)
    run = lambda seed, key: explain(images, TARGETS[:1], backbone, classifier, config, seed=seed, keys=[key]).latents  # noqa: E731
    assert torch.equal(run(0, "x"), run(0, "x"))
    assert not torch.allclose(run(0, "x"), run(1, "x"))
    assert not torch.allclose(run(0, "x"), run(0, "y"))


def test_explain_reports_facts_and_consensus(backbone, classifier):
    images = toy_images(4)
    records = []
    result = explain(
        images, TARGETS, backbone, classifier, LDCEConfig(strength=0.3, ddim_steps=20), callback=records.append
    )
    assert [r.index for r in records] == [5, 4, 3, 2, 1, 0]
    assert all(r.consensus_mask.shape == (4, 4, 4) and r.target_probability.shape == (4,) for r in records)
    logits = classifier(result.images)
    assert torch.equal(result.prediction, logits.argmax(1))
    torch.testing.assert_close(result.target_confidence, logits.softmax(1)[torch.arange(4), TARGETS])
    torch.testing.assert_close(result.l1, (result.images - images).abs().flatten(1).sum(1))
    expected_share = torch.stack([r.consensus_mask for r in records]).float().mean(0)
    torch.testing.assert_close(result.consensus, expected_share)
    assert ((result.images >= 0) & (result.images <= 1)).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strength", 1.5),
        ("classifier_lambda", -1.0),
        ("deg_cone_projection", 0.0),
        ("deg_cone_projection", 181.0),
        ("cone_projection_type", "cone"),
        ("lp_custom", 3),
    ],
)
def test_invalid_hyperparameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(LDCEConfig(), **{field: value})
