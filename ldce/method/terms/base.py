"""The guidance-term interface: what a term sees at one denoising step and what it returns.

At grid index ``i`` (``a = a_i``, ``t = τ_i``) the guided noise model (``ldce.method.guided``) computes

    e_u = eps(z, t, u),   e_c = eps(z, t, c),   d = e_c − e_u          (B, C, h, w)
    ẑ0 = (z − √(1−a)·e_u) / √a,   x̂0 = (D(ẑ0/s) + 1) / 2              (B, C, h, w), (B, 3, H, W)

and combines the terms' scores into the guided noise ``ê = e_u + scale · Σ_k score_k``.

A term that differentiates a loss ``L(x̂0)`` returns ``∂L/∂x̂0`` from :meth:`GuidanceTerm.image_gradient`;
the noise model carries all such image gradients back to ``z`` through the one shared ``z ↦ x̂0`` graph
(one backward pass each, or one batched pass) and hands each term its own ``∂L/∂z`` in
:meth:`GuidanceTerm.score`; such a term sets ``needs_gradient = True``. A term without a loss
(classifier-free guidance, a fixed direction) keeps the default ``needs_gradient = False`` and is
given ``None``. Adding a guidance idea is one new subclass.

The sign: ``z`` moves against ``ê`` (``ẑ0' = (z − √(1−a)·ê)/√a``), so a score of
``inputs.score_scale · ∂L/∂z = −√(1−a)·∂L/∂z`` *increases* ``L`` — as LDCE's classifier term raises
``log p(y_t | x̂0)`` — and its negative decreases it (LDCE's distance term).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Task:
    """What a batch is asked for, fixed over all steps.

    images: the originals ``x`` in [0, 1], ``(B, 3, H, W)``; targets: int64 ``(B,)``;
    cond / null: the backbone's conditioning for the targets and the null conditioning (batch first).
    """

    images: Tensor
    targets: Tensor
    cond: Tensor
    null: Tensor


@dataclass(frozen=True)
class StepInputs:
    """One step's quantities, all detached from autograd (float32).

    index: grid index ``i``; alpha: ``a_i`` (0-dim); z: the latent ``z_t``; noise: ``e_u``;
    implicit: ``d = e_c − e_u``; clean_latent: ``ẑ0`` — each ``(B, C, h, w)``; image: ``x̂0``
    ``(B, 3, H, W)``, not clamped; task: the batch's :class:`Task`.
    """

    index: int
    alpha: Tensor
    z: Tensor
    noise: Tensor
    implicit: Tensor
    clean_latent: Tensor
    image: Tensor
    task: Task

    @property
    def score_scale(self) -> Tensor:
        """``−√(1 − a)``: a latent gradient ``g`` becomes the score ``s = −√(1 − a)·g`` (docs/algorithm.md step 4)."""
        return -torch.sqrt(1.0 - self.alpha)


@dataclass(frozen=True)
class ImageGradient:
    """A term's loss gradient w.r.t. the predicted image, ``∂L/∂x̂0`` float32 ``(B, 3, H, W)``,
    and, for a classifier term, the target's probability on ``x̂0``, ``(B,)``."""

    gradient: Tensor
    target_probability: Tensor | None = None


@dataclass(frozen=True)
class TermOutput:
    """A term's contribution to ``(ê − e_u) / scale``, ``(B, C, h, w)``; for a consensus term, the bool
    mask ``(B, h, w)`` of latent pixels whose score passed the consensus test; for a term with a loss,
    its saliency ``|∂L/∂z|`` summed over channels, ``(B, h, w)`` (where the loss wants change)."""

    score: Tensor
    consensus_mask: Tensor | None = None
    saliency: Tensor | None = None


class GuidanceTerm(abc.ABC):
    """One additive part of the guided noise; see the module docstring for the protocol."""

    needs_gradient: bool = False
    """Set to true by a term whose :meth:`image_gradient` returns a gradient (then the step builds the
    ``z ↦ x̂0`` graph and calls it)."""

    def image_gradient(self, image: Tensor, task: Task) -> ImageGradient | None:
        """``∂L/∂x̂0`` of this term's loss at ``image`` (``x̂0`` ``(B, 3, H, W)``, float32, detached);
        called only when ``needs_gradient`` is true."""
        return None

    @abc.abstractmethod
    def score(self, inputs: StepInputs, latent_gradient: Tensor | None) -> TermOutput:
        """The term's score ``(B, C, h, w)`` from the step's quantities and its own ``∂L/∂z``
        (``(B, C, h, w)``; ``None`` when ``needs_gradient`` is false)."""
