"""Write a diffusers Stable Diffusion in the original (CompVis) single-file format, for tests.

The inverse of diffusers' ``convert_ldm_*_checkpoint``, written from the original modules' names
(openaimodel ``UNetModel``: ``input_blocks`` / ``middle_block`` / ``output_blocks``, each block a
list ``[resnet, attention, up/downsampler]``; ldm ``Encoder``/``Decoder``: ``down`` / ``mid`` /
``up``, the decoder's ``up`` numbered from the lowest resolution) and checked against the real SD v1
key names and shapes in ``golden/sd_v1_manifest.json``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from torch import Tensor, nn

from ldce.backbones.sd_original import TEXT_PREFIX, V1_INFERENCE_CONFIG

UNET_PREFIX, VAE_PREFIX = "model.diffusion_model.", "first_stage_model."
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_first(rest: str, names: dict[str, str]) -> str:
    """Rename the leading module path of ``rest`` (``"norm1.weight"`` → ``"in_layers.0.weight"``)."""
    for old, new in names.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    return rest


def unet_original_key(key: str, config: Any) -> str:
    """openaimodel name of a diffusers ``UNet2DConditionModel`` key (``L`` resnets per down level)."""
    per_level = config.layers_per_block + 1
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        part = f"0.{_rename_first(rest, UNET_RESNET)}" if kind == "resnets" else f"1.{rest}"
        return f"input_blocks.{per_level * level + j + 1}.{part}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{per_level * (int(m[1]) + 1)}.0.op.{m[2]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        part = f"0.{_rename_first(rest, UNET_RESNET)}" if kind == "resnets" else f"1.{rest}"
        return f"output_blocks.{per_level * level + j}.{part}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
        level = int(m[1])
        slot = 2 if config.up_block_types[level].startswith("CrossAttn") else 1
        return f"output_blocks.{per_level * level + per_level - 1}.{slot}.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_rename_first(m[2], UNET_RESNET)}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    return _rename_first(key, UNET_TOP)


def vae_original_key(key: str, config: Any) -> str:
    """ldm ``Encoder``/``Decoder`` name of a diffusers ``AutoencoderKL`` key."""
    levels = len(config.block_out_channels)
    block = r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)"
    if m := re.fullmatch(block, key):
        side, direction, level, kind, j, rest = m[1], m[2], int(m[3]), m[4], m[5], m[6]
        level = level if direction == "down" else levels - 1 - level
        module = f"block.{j}.{_rename_first(rest, VAE_RESNET)}" if kind == "resnets" else f"{direction}sample.{rest}"
        return f"{side}.{direction}.{level}.{module}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_rename_first(m[3], VAE_RESNET)}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        return f"{m[1]}.mid.attn_1.{_rename_first(m[2], VAE_ATTENTION)}"
    return key.replace("conv_norm_out", "norm_out")


def _vae_original_tensor(key: str, value: Tensor) -> Tensor:
    """The original mid-block attention uses 1×1 convolutions where diffusers uses linear layers."""
    return value[:, :, None, None] if ".mid_block.attentions." in key and value.dim() == 2 else value


def original_state_dict(unet: nn.Module, vae: nn.Module, text_encoder: nn.Module | None = None) -> dict[str, Tensor]:
    """``model.diffusion_model.*``, ``first_stage_model.*`` and (if given) ``cond_stage_model.transformer.*``."""
    state = {UNET_PREFIX + unet_original_key(k, unet.config): v for k, v in unet.state_dict().items()}
    state |= {
        VAE_PREFIX + vae_original_key(k, vae.config): _vae_original_tensor(k, v) for k, v in vae.state_dict().items()
    }
    if text_encoder is not None:
        state |= legacy_clip_state_dict(text_encoder)
    return {k: v.contiguous() for k, v in state.items()}


def legacy_clip_state_dict(text_encoder: nn.Module) -> dict[str, Tensor]:
    """``cond_stage_model.transformer.*`` as released SD v1 checkpoints hold it: written by an older
    transformers, with a ``text_model.`` level and the int64 ``position_ids`` buffer ``(1, 77)``."""
    state = {TEXT_PREFIX + "text_model." + k: v for k, v in text_encoder.state_dict().items()}
    positions = text_encoder.config.max_position_embeddings
    return state | {TEXT_PREFIX + "text_model.embeddings.position_ids": torch.arange(positions)[None]}


def original_config(unet: UNet2DConditionModel, vae: AutoencoderKL, image_size: int) -> dict[str, Any]:
    """The packaged ``v1-inference.yaml`` with the architecture of ``unet`` and ``vae``."""
    config = yaml.safe_load(V1_INFERENCE_CONFIG.read_text())
    params = config["model"]["params"]
    u, v = unet.config, vae.config
    params["image_size"] = u.sample_size
    params["unet_config"]["params"].update(
        model_channels=u.block_out_channels[0],
        channel_mult=[c // u.block_out_channels[0] for c in u.block_out_channels],
        num_res_blocks=u.layers_per_block,
        num_heads=u.attention_head_dim,
        context_dim=u.cross_attention_dim,
        attention_resolutions=[2**i for i, kind in enumerate(u.down_block_types) if kind.startswith("CrossAttn")],
    )
    params["first_stage_config"]["params"]["ddconfig"].update(
        ch=v.block_out_channels[0],
        ch_mult=[c // v.block_out_channels[0] for c in v.block_out_channels],
        num_res_blocks=v.layers_per_block,
        resolution=image_size,
    )
    return config


def write_original_sd(
    sd: Any, folder: Path, suffix: str = ".safetensors", text: bool = True, extra: dict[str, Tensor] | None = None
) -> tuple[Path, Path]:
    """The tiny model as an original SD checkpoint + yaml; returns their paths."""
    state = original_state_dict(sd.unet, sd.vae, sd.text_encoder if text else None)
    state |= {"alphas_cumprod": sd.alphas_cumprod} | (extra or {})
    checkpoint, config = folder / f"model{suffix}", folder / "model.yaml"
    if suffix == ".safetensors":
        save_file(state, checkpoint)
    else:
        torch.save({"state_dict": state, "global_step": 1}, checkpoint)
    config.write_text(yaml.safe_dump(original_config(sd.unet, sd.vae, sd.image_size)))
    return checkpoint, config


def save_clip(model: Any, folder: Path) -> Path:
    """The model's CLIP text encoder and tokenizer as one flat local folder."""
    model.text_encoder.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return folder
