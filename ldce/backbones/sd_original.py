"""Original (CompVis) Stable Diffusion 1.x single-file checkpoints → diffusers modules, offline.

The checkpoint (``.ckpt``/``.safetensors``, optionally wrapping ``{"state_dict": …}``) holds
``model.diffusion_model.*`` (openaimodel UNet), ``first_stage_model.*`` (KL autoencoder),
usually ``cond_stage_model.transformer.*`` (the CLIP text tower) and possibly ``model_ema.*`` and
schedule buffers. The architecture comes from a *local* original yaml (``v1-inference.yaml`` is
packaged): diffusers' single-file loader would otherwise look its config up on the hub. The
diffusers configs come from :mod:`ldce.backbones.ldm_config`, keys are renamed with diffusers'
``convert_ldm_*_checkpoint`` helpers, and loading is strict: every UNet and first-stage tensor must
be consumed and every target weight filled with the right shape (diffusers' own
``from_single_file`` only warns about unused tensors and assumes 512 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from torch import Tensor
from transformers import CLIPTextModel

from ldce.backbones import compvis, ldm_config
from ldce.backbones.compvis import FIRST_STAGE_PREFIX, UNET_PREFIX
from ldce.checkpoints import CheckpointError, existing_file, load_strict

V1_INFERENCE_CONFIG = Path(__file__).resolve().parent / "configs" / "v1-inference.yaml"
TEXT_PREFIX = "cond_stage_model.transformer."
LEGACY_TEXT_PREFIX = "text_model."
POSITION_IDS = "embeddings.position_ids"
CLIP_EMBEDDER_TARGET = "ldm.modules.encoders.modules.FrozenCLIPEmbedder"
EXPECTED_TARGETS = {
    "unet_config": ldm_config.UNET_TARGET,
    "first_stage_config": ldm_config.KL_TARGET,
    "cond_stage_config": CLIP_EMBEDDER_TARGET,
}


@dataclass
class ConvertedSD:
    """The diffusers modules of one SD checkpoint, its CLIP weights (transformers names, maybe
    empty) and the scheduler config of its training schedule."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_state: dict[str, Tensor]
    scheduler_config: dict[str, Any]


def read_sd_config(path: str | Path) -> dict[str, Any]:
    """``model.params`` of a local original SD yaml, checked to be text-conditional SD 1.x (eps)."""
    path = existing_file(path, "original SD config (an ldm yaml such as v1-inference.yaml)")
    try:
        params = yaml.safe_load(path.read_text())["model"]["params"]
        targets = {name: params[name]["target"] for name in EXPECTED_TARGETS}
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{path}: not an LDM yaml with model.params.{{unet,first_stage,cond_stage}}_config ({err!r})"
        ) from err
    settings = {
        "conditioning_key": params.get("conditioning_key"),
        "parameterization": params.get("parameterization", "eps"),
        "beta_schedule": params.get("beta_schedule", "linear"),
    }
    expected = {"conditioning_key": "crossattn", "parameterization": "eps", "beta_schedule": "linear"}
    if targets != EXPECTED_TARGETS or settings != expected:
        raise CheckpointError(
            f"{path}: expected Stable Diffusion 1.x ({EXPECTED_TARGETS}, {expected}); found {targets}, {settings}"
        )
    return params


def sd_scheduler_config(params: dict[str, Any]) -> dict[str, Any]:
    """The LDM ``linear`` schedule ``betas = linspace(√start, √end, T)²`` is diffusers' ``scaled_linear``."""
    return {
        "beta_start": params.get("linear_start", 1e-4),
        "beta_end": params.get("linear_end", 2e-2),
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": params.get("timesteps", 1000),
    }


def load_sd_checkpoint(checkpoint: str | Path, original_config: str | Path, use_ema: bool = False) -> ConvertedSD:
    """Read and convert a local SD 1.x checkpoint; raises :class:`CheckpointError` naming the file on
    an architecture mismatch (unconsumed or missing tensors, wrong shapes). use_ema: UNet from ``model_ema.*``."""
    params = read_sd_config(original_config)
    state = compvis.load_compvis_state_dict(checkpoint)
    where = f"{checkpoint} (with {original_config})"
    unet_config = {**ldm_config.unet_config_from_ldm(params, where), "sample_size": params["image_size"]}
    _, vae_config = ldm_config.first_stage_config_from_ldm(params, where)
    if use_ema:
        unet_source, _ = compvis.ema_source(state, where)
    else:
        unet_source = _with_prefix(state, UNET_PREFIX, where)
    vae_source = _with_prefix(state, FIRST_STAGE_PREFIX, where)
    unet_state = _convert(convert_ldm_unet_checkpoint(unet_source, unet_config), unet_source, where)
    vae_state = _convert(convert_ldm_vae_checkpoint(vae_source, vae_config), vae_source, where)
    return ConvertedSD(
        unet=compvis.materialise(UNet2DConditionModel, unet_config, unet_state, where).eval(),
        vae=compvis.materialise(AutoencoderKL, vae_config, vae_state, where).eval(),
        text_state={k[len(TEXT_PREFIX) :]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)},
        scheduler_config=sd_scheduler_config(params),
    )


def _with_prefix(state: dict[str, Tensor], prefix: str, where: str) -> dict[str, Tensor]:
    """The tensors under ``prefix``; an error if there are none (not an SD checkpoint)."""
    selected = {k: v for k, v in state.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"{where}: no '{prefix}*' tensors: not an original Stable Diffusion checkpoint")
    return selected


def _convert(converted: dict[str, Tensor | None], source: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """The renamed float32 state dict; an error naming any source tensor the renaming left out."""
    state, used = compvis.renamed_tensors(converted, source)
    unused = sorted(set(source) - used)
    if unused:
        raise CheckpointError(
            f"{where}: {len(unused)} tensors not consumed (config does not match the checkpoint?): {unused[:20]}"
        )
    return {k: v.float() for k, v in state.items()}


def load_text_weights(text_encoder: CLIPTextModel, text_state: dict[str, Tensor], where: str) -> None:
    """Load the checkpoint's CLIP text tower into ``text_encoder``, strictly.

    Released checkpoints were written by older transformers, whose ``CLIPTextModel`` kept its
    modules under ``text_model.`` and ``position_ids`` as a persistent buffer; both are adapted to
    the installed version (transformers 5: no ``text_model.`` level, no saved ``position_ids``).
    """
    expected = text_encoder.state_dict()
    legacy = "" if any(k.startswith(LEGACY_TEXT_PREFIX) for k in expected) else LEGACY_TEXT_PREFIX
    state = {k.removeprefix(legacy): v.float() if v.is_floating_point() else v for k, v in text_state.items()}
    state = {k: v for k, v in state.items() if k in expected or not k.endswith(POSITION_IDS)}
    load_strict(text_encoder, state, f"{where}: {TEXT_PREFIX}*", "the CLIP text encoder")
