"""Guidance is a set of pluggable terms: a term written here joins LDCE's without any edit to the sampler."""

from __future__ import annotations

import torch
from cli_helpers import ldce_here, records, tiny_config, uneven_shards
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.guided import GuidedNoiseModel, ldce_terms
from ldce.method.sampler import ddim_update
from ldce.method.schedule import ddim_grid
from ldce.method.terms import GuidanceTerm, StepInputs, Task, TermOutput

TARGETS = torch.tensor([1, 3, 5, 7])


class ConstantScore(GuidanceTerm):
    """A score of ``value`` everywhere, needing no gradient (the default): ``ê`` moves by ``scale · value``."""

    def __init__(self, value: float = 0.1) -> None:
        self.value = value

    def score(self, inputs: StepInputs, latent_gradient: torch.Tensor | None) -> TermOutput:
        return TermOutput(torch.full_like(inputs.z, self.value))


def _task(backbone):
    images = toy_images(4)
    cond, null = backbone.conditioning(TARGETS)
    return Task(images, TARGETS, cond, null)


def test_an_added_term_shifts_the_guided_noise_by_scale_times_its_score():
    """ê with the extra term = ê without it + scale · 0.25, at every step and for every guidance."""
    backbone, classifier = ToyBackbone(), toy_classifier()
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    for guidance in ("projected", "free"):
        config = LDCEConfig(ddim_steps=20, guidance=guidance, scale=2.0)
        plain = GuidedNoiseModel(backbone, ldce_terms(config, classifier), 2.0, grid, task)(z, 9)
        extra = GuidedNoiseModel(backbone, [*ldce_terms(config, classifier), ConstantScore(0.25)], 2.0, grid, task)(
            z, 9
        )
        torch.testing.assert_close(extra.eps, plain.eps + 0.5, rtol=0, atol=1e-6)
        assert torch.equal(extra.record.clean_image, plain.record.clean_image)


def test_explain_takes_extra_terms_and_the_loop_applies_their_ddim_updates():
    """One step of ``explain`` with a constant term equals the DDIM update of the term-shifted noise."""
    backbone, classifier = ToyBackbone(), toy_classifier()
    images = toy_images(4)
    config = LDCEConfig(ddim_steps=20, strength=0.05, guidance="free", scale=2.0)  # one guided step, index 0
    noise = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    shifted = explain(images, TARGETS, backbone, classifier, config, noise=noise, extra_terms=[ConstantScore(0.25)])
    plain = explain(images, TARGETS, backbone, classifier, config, noise=noise)
    grid = ddim_grid(backbone.alphas_cumprod, 20)
    z0 = backbone.encode(images)
    z = grid.alphas[1].sqrt() * z0 + (1 - grid.alphas[1]).sqrt() * noise
    cond, null = backbone.conditioning(TARGETS)
    t = grid.timesteps[0].expand(4)
    e_u = backbone.eps(z, t, null)
    eps = e_u + 2.0 * (backbone.eps(z, t, cond) - e_u) + 2.0 * 0.25
    expected = ddim_update(z, eps, grid.alphas[0], grid.alphas_prev[0], grid.sigmas[0], None)
    torch.testing.assert_close(shifted.latents, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(shifted.latents, plain.latents)


def test_a_term_is_one_config_entry_of_ldce_predict(tmp_path):
    """``model.extra_terms`` takes a term by class path; the run explains every input with it."""
    term = {"class_path": "test_guidance_terms.ConstantScore", "init_args": {"value": 0.05}}
    config = tiny_config(tmp_path, uneven_shards(tmp_path / "data", (2,)), extra_terms=[term])
    ldce_here("predict", "--config", str(config), "--output_dir", str(tmp_path / "out"))
    assert [r["status"] for r in records(tmp_path / "out")] == ["done", "done"]
