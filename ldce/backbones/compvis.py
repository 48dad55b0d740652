"""Conversion of a CompVis class-conditional LDM checkpoint (plus its LDM yaml) to diffusers.

The source is a ``LatentDiffusion.state_dict()`` (``.safetensors``, or a ``.ckpt``/``.pt`` that may
wrap it as ``{"state_dict": …}``) with keys ``model.diffusion_model.*`` (openaimodel UNet),
``first_stage_model.*`` (VQ or KL autoencoder), ``cond_stage_model.embedding.weight`` (the class
table, last row = null class) and the schedule buffers. The diffusers configs are built from the
yaml here (diffusers' own helpers get the head count and the VQ first stage wrong), the keys are
renamed with diffusers' ``convert_ldm_*_checkpoint`` helpers, and every source key must be consumed
and every target key filled, with matching shapes: a mismatch is a wrong-architecture error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from torch import Tensor, nn

from ldce.backbones.base import linear_alphas_cumprod
from ldce.backbones.ldm_config import LDMSpec
from ldce.checkpoints import CheckpointError, load_strict, read_tensors

UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."
CLASS_TABLE_KEY = "cond_stage_model.embedding.weight"
EMA_PREFIX = "model_ema."
SCHEDULE_BUFFERS = frozenset(
    "betas alphas_cumprod alphas_cumprod_prev sqrt_alphas_cumprod sqrt_one_minus_alphas_cumprod "
    "log_one_minus_alphas_cumprod sqrt_recip_alphas_cumprod sqrt_recipm1_alphas_cumprod posterior_variance "
    "posterior_log_variance_clipped posterior_mean_coef1 posterior_mean_coef2".split()
)


@dataclass
class ConvertedLDM:
    """diffusers state dicts of one LDM (float32), plus what the backbone needs besides.

    ``class_table``: ``(num_classes + 1, D)``, last row the null class; ``alphas_cumprod``: float32
    ``(T,)``; ``image_size``: pixel resolution of the first stage.
    """

    spec: LDMSpec
    unet_state: dict[str, Tensor]
    first_stage_state: dict[str, Tensor]
    class_table: Tensor
    alphas_cumprod: Tensor
    scale_factor: float
    image_size: int


def load_compvis_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The ``LatentDiffusion`` state dict of a ``.safetensors``, ``.ckpt`` or ``.pt`` file (its
    ``state_dict`` entry when wrapped; Lightning's bookkeeping is read without running code)."""
    return read_tensors(path, "an LDM checkpoint (a CompVis LatentDiffusion state dict)")


def renamed_tensors(
    converted: dict[str, Tensor | None], source: dict[str, Tensor]
) -> tuple[dict[str, Tensor], set[str]]:
    """Drop ``None`` entries of a diffusers conversion and name the source keys it consumed.

    The helpers only rename and slice (conv 1×1 → linear keeps the data pointer), so a converted
    tensor is traced to its source by ``data_ptr``.
    """
    by_pointer: dict[int, list[str]] = {}
    for key, value in source.items():
        by_pointer.setdefault(value.data_ptr(), []).append(key)
    kept = {k: v for k, v in converted.items() if v is not None}
    used = {key for v in kept.values() for key in by_pointer.get(v.data_ptr(), [])}
    return kept, used


def ema_source(state: dict[str, Tensor], where: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """UNet keys with LitEma's tensors: ``model.diffusion_model.X.Y`` ← ``model_ema.diffusion_modelXY``."""
    ema_of = {k: EMA_PREFIX + "".join(k.split(".")[1:]) for k in state if k.startswith(UNET_PREFIX)}
    absent = sorted(v for v in ema_of.values() if v not in state)
    if absent:
        raise CheckpointError(f"{where}: use_ema=True but EMA keys are missing: {absent}")
    return {k: state[v] for k, v in ema_of.items()}, ema_of


def convert_compvis_state_dict(
    state: dict[str, Tensor], spec: LDMSpec, where: str, use_ema: bool = False
) -> ConvertedLDM:
    """Rename keys to diffusers; raise :class:`CheckpointError` naming ``where`` on any unused key.

    ``model_ema.*`` keys are ignored unless ``use_ema``; of the schedule buffers only
    ``alphas_cumprod`` is read (else ``abar`` is recomputed from ``linear_start``/``linear_end``).
    """
    params, stage_config = spec.params, spec.first_stage_config
    if use_ema:
        unet_source, ema_of = ema_source(state, where)
    else:
        unet_source, ema_of = {k: v for k, v in state.items() if k.startswith(UNET_PREFIX)}, {}
    unet_state, unet_used = renamed_tensors(convert_ldm_unet_checkpoint(unet_source, spec.unet_config), unet_source)
    ema_counters = {EMA_PREFIX + "decay", EMA_PREFIX + "num_updates"} if use_ema else set()
    used = {ema_of[k] for k in unet_used if k in ema_of} | ema_counters
    stage_source = {k: v for k, v in state.items() if k.startswith(FIRST_STAGE_PREFIX)}
    stage_state, stage_used = renamed_tensors(convert_ldm_vae_checkpoint(stage_source, stage_config), stage_source)
    codebook = FIRST_STAGE_PREFIX + "quantize.embedding.weight"
    if spec.first_stage_kind == "vq" and codebook in state:
        stage_state["quantize.embedding.weight"] = state[codebook]
        stage_used.add(codebook)
    if CLASS_TABLE_KEY not in state:
        raise CheckpointError(f"{where}: missing {CLASS_TABLE_KEY} (the class table of a class-conditional LDM)")
    ignored = SCHEDULE_BUFFERS | {k for k in state if k.startswith(EMA_PREFIX) and not use_ema}
    unused = set(state) - used - unet_used - stage_used - ignored - {CLASS_TABLE_KEY, "scale_factor"}
    if unused:
        raise CheckpointError(
            f"{where}: {len(unused)} source keys not consumed (wrong architecture?): {sorted(unused)}"
        )
    return ConvertedLDM(
        spec,
        {k: v.float() for k, v in unet_state.items()},
        {k: v.float() for k, v in stage_state.items()},
        class_table=_class_table(state[CLASS_TABLE_KEY], spec, where),
        alphas_cumprod=_alphas_cumprod(state, params, where),
        scale_factor=float(state["scale_factor"]) if "scale_factor" in state else stage_config["scaling_factor"],
        image_size=stage_config["sample_size"],
    )


def _class_table(table: Tensor, spec: LDMSpec, where: str) -> Tensor:
    """The ``(n_classes, context_dim)`` table; the yaml's ``n_classes`` counts the null row."""
    embedder = spec.params["cond_stage_config"]["params"]
    expected = (embedder.get("n_classes", 1000), spec.unet_config["cross_attention_dim"])
    if tuple(table.shape) != expected or embedder.get("embed_dim", expected[1]) != expected[1]:
        raise CheckpointError(f"{where}: class table has shape {tuple(table.shape)}, expected {expected}")
    return table.float()


def _alphas_cumprod(state: dict[str, Tensor], params: dict[str, Any], where: str) -> Tensor:
    """``abar``: the checkpoint buffer when present, else the LDM ``linear`` schedule."""
    steps = params.get("timesteps", 1000)
    if "alphas_cumprod" in state:
        abar = state["alphas_cumprod"].float()
    elif params.get("beta_schedule", "linear") == "linear":
        abar = linear_alphas_cumprod(params.get("linear_start", 1e-4), params.get("linear_end", 2e-2), steps)
    else:
        raise CheckpointError(f"{where}: no alphas_cumprod buffer and beta_schedule is not 'linear'")
    if abar.shape != (steps,):
        raise CheckpointError(f"{where}: alphas_cumprod has shape {tuple(abar.shape)}, expected ({steps},)")
    return abar.contiguous()


def materialise(
    model_class: type[nn.Module], config: dict[str, Any], state: dict[str, Tensor], where: str
) -> nn.Module:
    """Build ``model_class(**config)`` without random init and load ``state`` into it (strict)."""
    with torch.device("meta"):
        model = model_class(**config)
    load_strict(model, state, where, model_class.__name__, assign=True)
    return model
