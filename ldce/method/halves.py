"""The two noise predictions of a guided step, ``e_c = eps(z, t, c)`` and ``e_u = eps(z, t, u)``.

Two ways, the same numbers up to round-off (kernels are not batch-invariant):

- ``separate``: two calls on ``B`` latents, ``e_c`` under ``no_grad``, only ``e_u`` in the graph;
- ``joint``: one call on the ``2B`` latents ``[z; z]`` with ``[u; c]``, the whole call in the graph
  (one call cannot hold half of its batch out of it); only the ``e_u`` half reaches ``x̂0``, so the
  vector–Jacobian products carry zeros through the ``c`` half: every backward pass of the noise
  model then runs on ``2B``.

``joint`` saves a call's fixed cost (Python, kernel launches) and pays the ``c`` half's backward in
every vector–Jacobian product. Measured on CPU (one thread, ``benchmarks/step_cost.py --interleaved``,
medians of 15, ``benchmarks/RESULTS.md``), the whole step is no faster with ``joint`` for any latent
size tried — tiny (3×8×8) and demo (4×8×8) latents at ``B = 1`` and 4 within ±6 %, mid (3×16×16, ``B = 4``)
19 % slower — so the rule is: ``separate`` (the default) on CPU, whatever the latent size. ``joint``
can only pay where a call costs the same at ``B`` and ``2B`` *including its backward*: small latents on
a GPU, not measured yet (step_cost's ``joint_halves`` variant).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ldce.backbones.base import Backbone
from ldce.method.terms import Task

Halves = Literal["separate", "joint"]


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
