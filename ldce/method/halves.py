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
a GPU, not measured yet (step_cost's ``joint_halves`` variant). Compiled, with ``stacked_noise_vjp``
(``copies`` = 2: one ``3B`` call), it took 2–3 % off the golden tiny model's step (two interleaved runs,
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ldce.backbones.base import Backbone
from ldce.method.terms import Task

Halves = Literal["separate", "joint"]


def stacked(x: Tensor, copies: int) -> Tensor:
    """``[x; …; x]``, ``copies`` times along the batch; ``x`` itself (same layout, so the same kernels)
    for one copy."""
    return x if copies == 1 else torch.cat([x] * copies)


def noise_halves(
    backbone: Backbone, z: Tensor, t: Tensor, task: Task, graph: bool, joint: bool, copies: int = 1
) -> tuple[Tensor, Tensor]:
    """``(e_c, e_u)`` float32: ``e_c`` ``(B, C, h, w)`` never in a graph, ``e_u`` ``(copies·B, C, h, w)`` in the
    autograd graph of ``z`` when ``graph``. z: ``(copies·B, C, h, w)``, ``copies`` stacked copies of the batch's
    latents (``e_c`` from the first); t: int64 ``(B,)``; ``joint``: one call for both (module docstring)."""
    first, null, t_u = z[: len(t)], stacked(task.null, copies), stacked(t, copies)
    if joint:
        with torch.set_grad_enabled(graph):
            both = backbone.eps(torch.cat([z, first]), torch.cat([t_u, t]), torch.cat([null, task.cond])).float()
        e_u, e_c = both[: len(z)], both[len(z) :]
        return e_c.detach(), e_u
    with torch.no_grad():
        e_c = backbone.eps(first, t, task.cond).float()
    with torch.set_grad_enabled(graph):
        e_u = backbone.eps(z, t_u, null).float()
    return e_c, e_u
