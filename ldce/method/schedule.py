"""The DDIM grid of LDCE, exactly as ``docs/algorithm.md`` step 2–3 states it.

With ``T`` training steps and ``S`` DDIM steps, ``k = T // S`` and

    τ_i = i·k + 1,                 i = 0 … S−1
    a_i = ā[τ_i]
    a_prev_i = ā[0] if i = 0 else ā[τ_{i−1}]      (ā[0], not 1: the reference's convention)
    σ_i = η · √((1 − a_prev_i)/(1 − a_i) · (1 − a_i/a_prev_i))

LDCE noises the encoding to grid index ``n = ⌊strength·S⌋`` and then denoises with
``i = n−1, …, 0`` — the reference starts one grid point below where it noised; kept for parity.
(Where ``k`` does not divide ``T`` the reference's grid has extra points above ``τ_{S−1}``; they
are only reachable at strength 1, where ldce noises to ``τ_{S−1}`` instead.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DDIMGrid:
    """The per-index constants of a DDIM schedule, each of shape ``(S,)``.

    ``timesteps`` is int64; the others are float32 (``σ`` computed in float64, then rounded).
    """

    timesteps: Tensor
    alphas: Tensor
    alphas_prev: Tensor
    sigmas: Tensor

    @property
    def num_steps(self) -> int:
        return self.timesteps.shape[0]

    @property
    def sqrt_one_minus_alphas(self) -> Tensor:
        """``√(1 − a_i)``, float32 ``(S,)``."""
        return torch.sqrt(1.0 - self.alphas)

    def to(self, device: torch.device | str) -> DDIMGrid:
        return DDIMGrid(*(getattr(self, f).to(device) for f in ("timesteps", "alphas", "alphas_prev", "sigmas")))


def ddim_grid(alphas_cumprod: Tensor, num_steps: int, eta: float = 0.0) -> DDIMGrid:
    """Build the uniform DDIM grid over ``ā`` (``alphas_cumprod``, float32 ``(T,)``)."""
    num_timesteps = alphas_cumprod.shape[0]
    if not 0 < num_steps <= num_timesteps - 1:
        raise ValueError(f"ddim_steps must be in [1, {num_timesteps - 1}], got {num_steps}")
    if eta < 0:
        raise ValueError(f"ddim_eta must be ≥ 0, got {eta}")
    abar = alphas_cumprod.detach().to("cpu", torch.float32)
    timesteps = torch.arange(num_steps, dtype=torch.int64) * (num_timesteps // num_steps) + 1
    alphas = abar[timesteps]
    alphas_prev = torch.cat([abar[:1], alphas[:-1]])
    a, a_prev = alphas.double(), alphas_prev.double()
    sigmas = eta * torch.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    return DDIMGrid(timesteps, alphas, alphas_prev, sigmas.float())


def start_index(strength: float, num_steps: int) -> int:
    """``n = ⌊strength · S⌋``: the grid index the encoding is noised to; denoising runs ``n−1 … 0``.

    At strength 1 (``n = S``) there is no grid point ``S``; the start is then noised to ``S−1``
    (see :func:`noise_level`).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return math.floor(strength * num_steps)


def noise_level(grid: DDIMGrid, start: int) -> tuple[Tensor, Tensor]:
    """``(√a_n, √(1 − a_n))`` for the start ``z = √a_n · z0 + √(1 − a_n) · ξ`` (float32 scalars)."""
    index = min(start, grid.num_steps - 1)
    return grid.alphas[index].sqrt(), grid.sqrt_one_minus_alphas[index]
