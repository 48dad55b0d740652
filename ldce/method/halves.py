"""The two noise predictions of a guided step, ``e_c = eps(z, t, c)`` and ``e_u = eps(z, t, u)``.

Two ways, the same numbers up to round-off (kernels are not batch-invariant):

- ``separate``: two calls on ``B`` latents, ``e_c`` under ``no_grad``, only ``e_u`` in the graph;
- ``joint``: one call on the ``2B`` latents ``[z; z]`` with ``[u; c]``, the whole call in the graph
  (one call cannot hold half of its batch out of it); only the ``e_u`` half reaches ``x̂0``, so the
  vector–Jacobian products carry zeros through the ``c`` half: every backward pass of the noise
  model then runs on ``2B``.

``joint`` saves a call's fixed cost (Python, kernel launches) and pays the ``c`` half's backward.
It wins where a call costs about the same at ``B`` and ``2B``: small latents. The rule
(``halves: auto``, :func:`joint_by_size`) takes ``joint`` for latents of at most
:data:`JOINT_MAX_LATENT_PIXELS` pixels per image (``h·w``). Measured on CPU (one thread,
``B = 4``, ``benchmarks/step_cost.py --variants plain joint_halves``): see ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ldce.backbones.base import Backbone
from ldce.method.terms import Task

Halves = Literal["auto", "joint", "separate"]
JOINT_MAX_LATENT_PIXELS = 64
"""``auto`` computes both halves in one call for latents of at most this many pixels (``h·w``)."""


def joint_by_size(halves: Halves, latent: Tensor) -> bool:
    """Whether ``halves`` computes both halves in one call for latents ``(B, C, h, w)``."""
    if halves == "auto":
        return latent.shape[-2] * latent.shape[-1] <= JOINT_MAX_LATENT_PIXELS
    return halves == "joint"


def noise_halves(
    backbone: Backbone, z: Tensor, t: Tensor, task: Task, graph: bool, joint: bool
) -> tuple[Tensor, Tensor]:
    """``(e_c, e_u)``, each ``(B, C, h, w)`` float32; ``e_u`` in the autograd graph of ``z`` when ``graph``,
    ``e_c`` never. z: ``(B, C, h, w)``; t: int64 ``(B,)``; ``joint``: one ``2B`` call (module docstring)."""
    if joint:
        with torch.set_grad_enabled(graph):
            both = backbone.eps(torch.cat([z, z]), torch.cat([t, t]), torch.cat([task.null, task.cond])).float()
        e_u, e_c = both.chunk(2)
        return e_c.detach(), e_u
    with torch.no_grad():
        e_c = backbone.eps(z, t, task.cond).float()
    with torch.set_grad_enabled(graph):
        e_u = backbone.eps(z, t, task.null).float()
    return e_c, e_u
