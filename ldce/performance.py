"""Speed and memory switches for a backbone; none changes a result beyond float round-off.

- ``channels_last``: NHWC memory format for the convolutions (faster convs on recent GPUs);
- ``attention``: ``sdpa`` (PyTorch's fused scaled-dot-product attention, diffusers' default) or
  ``classic`` (explicit softmax(QKᵀ)V, for comparison);
- ``gradient_checkpointing``: recompute activations in the backward pass of the noise model (and
  of a KL decoder) instead of storing them: less memory for large batches, more compute;
- ``compile``: ``torch.compile`` of the noise model and of the first stage's decoder, with static
  shapes: each new batch or latent size compiles anew (with dynamic shapes, inductor in torch 2.14
  failed on the second model size seen in one process: "cannot determine truth value of Relational").

Mixed precision is not here: it follows the Lightning trainer's ``precision`` (autocast), and the
sampler keeps the guidance arithmetic in float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch import nn

from ldce.backbones.base import Backbone

log = logging.getLogger(__name__)

NOISE_MODEL_NAMES = ("unet", "transformer")
FIRST_STAGE_NAMES = ("first_stage", "vae")


Attention = Literal["sdpa", "classic"]


@dataclass(frozen=True)
class Speedups:
    """Which switches to apply (all off: the plain float32 eager computation)."""

    channels_last: bool = False
    attention: Attention = "sdpa"
    gradient_checkpointing: bool = False
    compile: bool = False


def _named_child(backbone: Backbone, names: tuple[str, ...]) -> tuple[str, nn.Module]:
    for name in names:
        if isinstance(getattr(backbone, name, None), nn.Module):
            return name, getattr(backbone, name)
    raise TypeError(f"{type(backbone).__name__} has none of the submodules {names}")


def apply_speedups(backbone: Backbone, speedups: Speedups) -> Backbone:
    """Apply ``speedups`` to ``backbone`` in place (and return it)."""
    noise_name, noise_model = _named_child(backbone, NOISE_MODEL_NAMES)
    _, first_stage = _named_child(backbone, FIRST_STAGE_NAMES)
    if speedups.channels_last:
        backbone.to(memory_format=torch.channels_last)
    if hasattr(noise_model, "set_attn_processor"):
        noise_model.set_attn_processor(AttnProcessor2_0() if speedups.attention == "sdpa" else AttnProcessor())
    if speedups.gradient_checkpointing:
        for module in (noise_model, first_stage):
            if getattr(module, "_supports_gradient_checkpointing", False):
                module.enable_gradient_checkpointing()
            else:
                log.info("%s does not support gradient checkpointing; left as is", type(module).__name__)
    if speedups.compile:
        setattr(backbone, noise_name, torch.compile(noise_model, dynamic=False))
        first_stage.decoder = torch.compile(first_stage.decoder, dynamic=False)
    return backbone
