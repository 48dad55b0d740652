"""What ``explain`` returns: per-sample tensors that slice and concatenate along the batch.

``Counterfactuals`` holds the counterfactual images and their facts; ``StepTrace`` what every guided
step saw. Both are :class:`PerSample`: ``head(n)`` keeps the first ``n`` samples (dropping padding),
``cat`` joins groups in order, ``cpu()`` moves everything to the CPU as float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor


def first_rows(value: Tensor | None, n: int) -> Tensor | None:
    """``value[:n]``, or ``None`` for an absent per-sample tensor."""
    return None if value is None else value[:n]


def _cat(values: list[Tensor | None]) -> Tensor | None:
    return None if values[0] is None else torch.cat(values)


class PerSample:
    """A dataclass of per-sample tensors (batch first, ``None`` where absent): slicing and concatenation."""

    def head(self, n: int):
        """The first ``n`` samples."""
        return type(self)(**{f.name: _rows(getattr(self, f.name), n) for f in fields(self)})

    @classmethod
    def cat(cls, parts: Sequence):
        """Samples of several results, in order."""
        return cls(**{f.name: _joined([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def cpu(self):
        """A copy on the CPU with floating-point tensors as float32 (e.g. after bf16 autocast)."""
        return type(self)(**{f.name: _on_cpu(getattr(self, f.name)) for f in fields(self)})


def _rows(value, n: int):
    return value.head(n) if isinstance(value, PerSample) else first_rows(value, n)


def _on_cpu(value):
    if isinstance(value, PerSample):
        return value.cpu()
    if value is None:
        return None
    return (value.float() if value.is_floating_point() else value).cpu()


def _joined(values: list):
    return type(values[0]).cat(values) if isinstance(values[0], PerSample) else _cat(values)


@dataclass(frozen=True)
class StepTrace(PerSample):
    """Per sample and guided step, in denoising order (``n`` steps, ``B`` samples).

    target_probability: ``p_f(y_t | x̂0)`` ``(B, n)`` (``None`` without a classifier term);
    clean_images: ``clamp(x̂0, 0, 1)`` ``(B, n, 3, H, W)``, consensus_masks: bool ``(B, n, h, w)`` and
    timesteps: int64 ``(B, n)`` (each step's ``τ_i``), kept only with ``record_steps`` (and masks only
    with a consensus term).
    """

    target_probability: Tensor | None
    clean_images: Tensor | None
    consensus_masks: Tensor | None
    timesteps: Tensor | None = None


@dataclass(frozen=True)
class Counterfactuals(PerSample):
    """Counterfactual images and their per-sample facts (``B`` samples).

    images: ``x_cf = clamp((D(z/s) + 1)/2, 0, 1)``, ``(B, 3, H, W)``; latents: final ``z`` ``(B, C, h, w)``;
    source_prediction / source_confidence: the classifier on the originals, ``(B,)``;
    prediction / confidence: the classifier on the counterfactuals, ``(B,)``;
    target_confidence: probability of the target on the counterfactuals, ``(B,)``;
    l1 / l2: ``||x − x_cf||_1`` and ``||x − x_cf||_2`` per image, ``(B,)``;
    consensus: share of steps each latent pixel was in consensus, ``(B, h, w)`` (consensus terms only);
    trace: what each step saw (:class:`StepTrace`); with a region (``ldce.method.region``): region, the
    pixels ``M`` ``(B, 1, H, W)`` in [0, 1] where the image may differ from the original (all ones where
    the uncomposited counterfactual was kept), region_growth, int64 ``(B,)``: the times the region grew to
    keep the flip, −1 where the uncomposited counterfactual was kept, and region_confident, bool ``(B,)``:
    whether the composite reached ``confidence`` (``None`` without a composite); with ``stop_after_flip``
    (``ldce.method.fast``): guidance_stopped_at, int64 ``(B,)``: the first guided step (0-based, in
    denoising order) that ran with classifier-free guidance only, −1 where classifier guidance never stopped.
    """

    images: Tensor
    latents: Tensor
    source_prediction: Tensor
    source_confidence: Tensor
    prediction: Tensor
    confidence: Tensor
    target_confidence: Tensor
    l1: Tensor
    l2: Tensor
    consensus: Tensor | None
    trace: StepTrace
    region: Tensor | None = None
    region_growth: Tensor | None = None
    region_confident: Tensor | None = None
    guidance_stopped_at: Tensor | None = None
