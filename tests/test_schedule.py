"""The DDIM grid equals docs/algorithm.md step 2–3."""

from __future__ import annotations

import math

import pytest
import torch

from ldce.backbones.base import linear_alphas_cumprod
from ldce.method.schedule import ddim_grid, noise_level, start_index

ABAR = linear_alphas_cumprod(0.0015, 0.0195)


@pytest.mark.parametrize("steps", [500, 20, 7])
def test_grid_matches_the_equations(steps):
    """τ_i = i·(T//S) + 1, a_i = ā[τ_i], a_prev_0 = ā[0], a_prev_i = ā[τ_{i−1}], σ from η."""
    grid = ddim_grid(ABAR, steps, eta=0.5)
    k = 1000 // steps
    assert grid.timesteps.tolist() == [i * k + 1 for i in range(steps)]
    for i in range(steps):
        a = ABAR[i * k + 1].item()
        a_prev = ABAR[0].item() if i == 0 else ABAR[(i - 1) * k + 1].item()
        assert grid.alphas[i].item() == a
        assert grid.alphas_prev[i].item() == a_prev
        sigma = 0.5 * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        assert grid.sigmas[i].item() == pytest.approx(sigma, rel=1e-6, abs=1e-12)


def test_eta_zero_gives_zero_sigmas():
    assert torch.count_nonzero(ddim_grid(ABAR, 20).sigmas) == 0


def test_linear_schedule_matches_the_checkpoint_buffer_recipe():
    """ā = cumprod(1 − linspace(√β0, √β1, T)²) in float64, rounded once to float32."""
    betas = [(math.sqrt(0.0015) + (math.sqrt(0.0195) - math.sqrt(0.0015)) * i / 999) ** 2 for i in range(1000)]
    expected = torch.tensor(betas, dtype=torch.float64).neg().add(1).cumprod(0).float()
    assert torch.equal(ABAR, expected)


@pytest.mark.parametrize(
    ("strength", "steps", "expected"), [(0.382, 500, 191), (0.5, 20, 10), (0.0, 20, 0), (1.0, 7, 7)]
)
def test_start_index_is_floor_of_strength_times_steps(strength, steps, expected):
    assert start_index(strength, steps) == expected


def test_strength_one_noises_to_the_last_grid_point():
    grid = ddim_grid(ABAR, 7)
    assert noise_level(grid, 7)[0] == grid.alphas[6].sqrt()
    assert noise_level(grid, 3)[1] == torch.sqrt(1 - grid.alphas[3])


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_strength_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="strength"):
        start_index(bad, 10)


def test_invalid_step_counts_are_rejected():
    with pytest.raises(ValueError, match="ddim_steps"):
        ddim_grid(ABAR, 0)
    with pytest.raises(ValueError, match="ddim_eta"):
        ddim_grid(ABAR, 10, eta=-1)
