"""Self-recurrence (the original's ``self_recurrence``): extra unguided DDIM updates after a guided step.

After the guided DDIM update at grid index ``i`` has given ``z`` (``a = a_i``, ``a' = a_prev_i``,
``σ = σ_i``), the original's ``decode`` loop applies, ``self_recurrence`` times, the DDIM update *of
the same index* again to the result:

    e = eps(z, τ_i, c)                                     conditional noise only: no guidance, scale 1
    z ← √a'·(z − √(1−a)·e)/√a + √(1 − a' − σ²)·e + σ·ξ     ξ fresh per update (only for η > 0)

It does not re-noise ``z`` back to ``τ_i``: the latent, already at ``τ_{i−1}``'s level, is treated as if
it were at ``τ_i`` and moved once more towards ``τ_{i−1}``. This happens at every step of the loop,
the last (``i = 0``) included; the original reads ``self_recurrence_every_n_steps`` but never uses it
— here it restricts the updates to grid indices divisible by it (0: every step, as in the original).
In the original the blend with the original latent (``masked_guidance``) comes before each guided
step, so after these updates; here :class:`SelfRecurrence` is a step hook placed before the region
hook.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ldce.backbones.base import Backbone
from ldce.method.guided import StepRecord
from ldce.method.sampler import ddim_update
from ldce.method.schedule import DDIMGrid


class SelfRecurrence:
    """A step hook: ``repeats`` unguided DDIM updates at the step's own grid index (module docstring).

    Args:
        backbone: the latent diffusion model.
        grid: the DDIM grid, on the latents' device.
        cond: the targets' conditioning ``c`` (batch first).
        repeats: ``self_recurrence``, ≥ 1.
        every_n_steps: ``self_recurrence_every_n_steps``: only at grid indices ``i`` with ``i mod n = 0``
            (0: every step).
        noise: ``ξ`` of the extra updates for ``η > 0``, ``(steps, repeats, B, C, h, w)``, row ``i`` for
            grid index ``i``; ``None`` for ``η = 0``.
    """

    def __init__(
        self,
        backbone: Backbone,
        grid: DDIMGrid,
        cond: Tensor,
        repeats: int,
        every_n_steps: int = 0,
        noise: Tensor | None = None,
    ) -> None:
        if repeats < 1 or every_n_steps < 0:
            raise ValueError(f"self_recurrence must be ≥ 1 and every_n_steps ≥ 0, got {repeats}, {every_n_steps}")
        self.backbone, self.grid, self.cond = backbone, grid, cond
        self.repeats, self.every_n_steps, self.noise = repeats, every_n_steps, noise

    def applies(self, index: int) -> bool:
        """Whether the updates follow the guided step at grid index ``index``."""
        return self.every_n_steps == 0 or index % self.every_n_steps == 0

    @torch.no_grad()
    def __call__(self, z: Tensor, index: int, record: StepRecord) -> Tensor:
        """z: ``(B, C, h, w)`` after the guided step at ``index``; returns it after the extra updates."""
        if not self.applies(index):
            return z
        grid, t = self.grid, self.grid.timesteps[index].expand(z.shape[0])
        for repeat in range(self.repeats):
            eps = self.backbone.eps(z, t, self.cond).float()
            noise = None if self.noise is None else self.noise[index, repeat]
            z = ddim_update(z, eps, grid.alphas[index], grid.alphas_prev[index], grid.sigmas[index], noise)
        return z
