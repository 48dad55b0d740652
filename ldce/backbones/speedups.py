"""Speed and memory switches for a backbone; none changes a result beyond float round-off.

- ``channels_last``: NHWC memory format for the convolutions (faster convs on recent GPUs);
- ``attention``: ``sdpa`` (PyTorch's fused scaled-dot-product attention, diffusers' default) or
  ``classic`` (explicit softmax(QKᵀ)V, for comparison);
- ``gradient_checkpointing``: recompute activations in the backward pass of the noise model (and
  of a KL decoder) instead of storing them: less memory for large batches, more compute;
- ``contiguous_attention`` (off by default, see :class:`Speedups`): diffusers' attention returns its 4-D output with
  channels-last strides (a transposed ``(B, hw, C)`` tensor), and every layer after it — the rest of
  a decoder after its mid-block attention — inherits that layout, on which GroupNorm's backward is
  ~3× slower on CPU; a forward hook makes the output contiguous (without ``channels_last`` only);
- ``compile``: ``torch.compile`` of the noise model and of the first stage's decoder, with static
  shapes: each new batch or latent size compiles anew (with dynamic shapes, inductor in torch 2.14
  failed on the second model size seen in one process: "cannot determine truth value of Relational");
  ``cpp_wrapper`` adds inductor's C++ wrapper (the compiled kernels called from C++, not Python).

Mixed precision is not here: it follows the Lightning trainer's ``precision`` (autocast), and the
sampler keeps the guidance arithmetic in float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import ModelMixin
from diffusers.models.attention_processor import Attention as DiffusersAttention
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch import Tensor, nn

from ldce.backbones.base import Backbone

log = logging.getLogger(__name__)

Attention = Literal["sdpa", "classic"]


@dataclass(frozen=True)
class Speedups:
    """Speed and memory switches of the backbone's networks; by default the plain float32 eager computation.
    ``contiguous_attention`` takes 1–7 % off a CPU step but is off by default: it moves each step's result
    by float round-off, which guided sampling amplifies over a run (the quickstart's COUT 0.685 → 0.691,
    judge FID 21.23 → 20.33, the same flip rate), and the published numbers stay reproducible without it.

    Args:
        channels_last: NHWC memory format for the convolutions (faster convs on recent GPUs).
        attention: ``sdpa`` (PyTorch's fused scaled-dot-product attention, diffusers' default) or
            ``classic`` (explicit softmax(QKᵀ)V, for comparison).
        gradient_checkpointing: recompute the noise model's (and a KL decoder's) activations in the
            backward pass instead of storing them: less memory for large batches, more compute.
        compile: ``torch.compile`` the noise model and the decoder (static shapes; each new batch
            or latent size compiles anew).
        cpp_wrapper: with ``compile``, inductor's ``cpp_wrapper``: the compiled kernels are called from
            generated C++ instead of Python (about 2 % off a CPU step on the golden tiny model; the
            first call then compiles for a minute or more longer).
        contiguous_attention: make the 4-D outputs of diffusers' attention blocks contiguous, so that
            the layers after them (a decoder's, after its mid-block attention) do not run on a
            channels-last layout (slow GroupNorm backward); ignored with ``channels_last``.
    """

    channels_last: bool = False
    attention: Attention = "sdpa"
    gradient_checkpointing: bool = False
    compile: bool = False
    cpp_wrapper: bool = False
    contiguous_attention: bool = False

    def __post_init__(self) -> None:
        if self.cpp_wrapper and not self.compile:
            raise ValueError("speedups.cpp_wrapper applies to compiled networks only: set speedups.compile: true too")


def apply_speedups(backbone: Backbone, speedups: Speedups) -> Backbone:
    """Apply ``speedups`` to the networks ``backbone.networks()`` declares, in place (and return it)."""
    networks = backbone.networks()
    if speedups.channels_last:
        backbone.to(memory_format=torch.channels_last)
    if isinstance(networks.noise_model, ModelMixin) and hasattr(networks.noise_model, "set_attn_processor"):
        networks.noise_model.set_attn_processor(AttnProcessor2_0() if speedups.attention == "sdpa" else AttnProcessor())
    if speedups.contiguous_attention and not speedups.channels_last:
        for network in (networks.noise_model, networks.first_stage):
            for module in network.modules():
                if isinstance(module, DiffusersAttention):
                    module.register_forward_hook(_contiguous)
    if speedups.gradient_checkpointing:
        for module in (networks.noise_model, networks.first_stage):
            if isinstance(module, ModelMixin) and module._supports_gradient_checkpointing:
                module.enable_gradient_checkpointing()
            else:
                log.info("%s does not support gradient checkpointing; left as is", type(module).__name__)
    if speedups.compile:
        options = {"cpp_wrapper": True} if speedups.cpp_wrapper else None
        networks.noise_model.compile(dynamic=False, options=options)
        networks.decoder.compile(dynamic=False, options=options)
    return backbone


def _contiguous(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
    """A 4-D ``(B, C, H, W)`` output in the default (contiguous) layout; other outputs as they are."""
    return output.contiguous() if output.ndim == 4 else output
