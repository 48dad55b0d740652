"""Self-recurrence (the original's ``self_recurrence``): extra unguided DDIM updates at a step's own grid index."""

from __future__ import annotations

from collections import Counter

import torch
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.sampler import ddim_update
from ldce.method.schedule import ddim_grid, start_index

TARGETS = torch.tensor([1, 3, 5, 7])


class CountingBackbone(ToyBackbone):
    """The toy backbone, counting noise-model calls per ``(timestep, conditioning)`` (``cond`` or ``null``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[int, str]] = Counter()

    def eps(self, latents, timesteps, cond):
        null = self.table.weight[10].expand_as(cond)
        self.calls[int(timesteps[0]), "null" if torch.equal(cond, null) else "cond"] += 1
        return super().eps(latents, timesteps, cond)


def _explain(backbone: ToyBackbone, **method) -> torch.Tensor:
    config = LDCEConfig(ddim_steps=20, **method)
    noise = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    return explain(toy_images(4), TARGETS, backbone, toy_classifier(), config, noise=noise).latents


def test_each_affected_step_calls_the_conditional_noise_model_n_more_times():
    """Per guided step: one conditional and one null call; with ``self_recurrence n`` the steps at grid
    indices divisible by ``every_n_steps`` (all for 0) make ``n`` more conditional calls, the null
    (guidance) calls stay one per step."""
    start = start_index(0.3, 20)
    grid = ddim_grid(ToyBackbone().alphas_cumprod, 20)
    for repeats, every in ((0, 0), (2, 0), (3, 2)):
        backbone = CountingBackbone()
        _explain(backbone, strength=0.3, self_recurrence=repeats, self_recurrence_every_n_steps=every)
        for index in range(start):
            t = int(grid.timesteps[index])
            extra = repeats if every == 0 or index % every == 0 else 0
            assert (backbone.calls[t, "cond"], backbone.calls[t, "null"]) == (1 + extra, 1), (repeats, every, index)


def test_the_extra_updates_are_ddim_updates_of_the_same_index_with_the_conditional_noise():
    """One guided step (index 0) then two updates ``z ← DDIM(z, eps(z, τ_0, c))`` of index 0, no
    re-noising and no guidance, computed here by hand from the run without self-recurrence."""
    backbone = ToyBackbone()
    plain = _explain(backbone, strength=0.05)  # start index 1: one guided step, at grid index 0
    grid = ddim_grid(backbone.alphas_cumprod, 20)
    cond, _ = backbone.conditioning(TARGETS)
    z, t = plain, grid.timesteps[0].expand(4)
    for _ in range(2):
        z = ddim_update(z, backbone.eps(z, t, cond), grid.alphas[0], grid.alphas_prev[0], grid.sigmas[0], None)
    recurrent = _explain(backbone, strength=0.05, self_recurrence=2)
    torch.testing.assert_close(recurrent, z, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(recurrent, plain)


def test_with_eta_the_extra_updates_draw_their_noise_from_the_samples_generators():
    """For ``η > 0`` each extra update adds ``σ·ξ`` drawn from the sample's own generator, not the global
    RNG: reseeding torch between two runs changes nothing."""
    backbone = ToyBackbone()
    torch.manual_seed(10)
    first = _explain(backbone, strength=0.3, ddim_eta=1.0, self_recurrence=1)
    torch.manual_seed(11)
    again = _explain(backbone, strength=0.3, ddim_eta=1.0, self_recurrence=1)
    assert torch.equal(first, again)
