"""The diffusers configs of an original (CompVis) LDM yaml: UNet and first stage, checked to be convertible.

diffusers' own helpers get the head count and the VQ first stage wrong, so the configs are built
here from the yaml's ``model.params``; every unsupported setting fails naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ldce.checkpoints import CheckpointError

VQ_TARGETS = ("ldm.models.autoencoder.VQModelInterface", "ldm.models.autoencoder.VQModel")
KL_TARGET = "ldm.models.autoencoder.AutoencoderKL"
CLASS_EMBEDDER_TARGET = "ldm.modules.encoders.modules.ClassEmbedder"
UNET_TARGET = "ldm.modules.diffusionmodules.openaimodel.UNetModel"


@dataclass(frozen=True)
class LDMSpec:
    """An LDM yaml's ``model.params`` and the diffusers configs built from it."""

    params: dict[str, Any]
    unet_config: dict[str, Any]
    first_stage_kind: str
    first_stage_config: dict[str, Any]


def read_ldm_config(path: str | Path) -> LDMSpec:
    """Read an original LDM yaml (pyyaml) and build the diffusers configs; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LDM config {path} not found (expected the original LDM yaml)")
    try:
        params = yaml.safe_load(path.read_text())["model"]["params"]
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: not an LDM yaml with a model.params section ({err!r})") from err
    return ldm_spec(params, str(path))


def ldm_spec(params: dict[str, Any], where: str) -> LDMSpec:
    """Check that ``params`` (an LDM ``model.params``) is a class-conditional LDM; build its configs."""
    try:
        targets = [params[f"{part}_config"]["target"] for part in ("unet", "first_stage", "cond_stage")]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{where}: no model.params.{{unet,first_stage,cond_stage}}_config ({err!r})") from err
    found = [*targets, params.get("conditioning_key"), params.get("parameterization", "eps")]
    fixed = [UNET_TARGET, CLASS_EMBEDDER_TARGET, "crossattn", "eps"]
    if found[1] in (*VQ_TARGETS, KL_TARGET) and found[:1] + found[2:] == fixed:
        return LDMSpec(params, unet_config_from_ldm(params, where), *first_stage_config_from_ldm(params, where))
    raise CheckpointError(
        f"{where}: expected a class-conditional LDM ({UNET_TARGET}, a VQ or KL first stage, "
        f"{CLASS_EMBEDDER_TARGET}, crossattn, eps); found {found}"
    )


def _require(params: dict[str, Any], supported: dict[str, Any], where: str) -> None:
    bad = {k: params[k] for k, v in supported.items() if k in params and params[k] != v}
    if bad:
        raise CheckpointError(f"{where}: unsupported settings {bad} (supported: {supported})")


def unet_config_from_ldm(params: dict[str, Any], where: str) -> dict[str, Any]:
    """``UNet2DConditionModel`` config from an openaimodel ``UNetModel`` config.

    Heads per level (openaimodel, legacy, spatial transformer): ``ch // num_head_channels`` when
    ``num_head_channels`` is set, else ``num_heads``; diffusers calls that ``attention_head_dim``.
    A level ``i`` (downsampling factor ``2**i``) has cross-attention iff ``2**i`` is in
    ``attention_resolutions``; the middle block always has it.
    """
    unet = params["unet_config"]["params"]
    _require(
        unet,
        {
            "use_spatial_transformer": True,
            "resblock_updown": False,
            "dims": 2,
            "num_classes": None,
            "conv_resample": True,
            "disable_self_attentions": None,
            "num_attention_blocks": None,
            "disable_middle_self_attn": False,
        },
        where,
    )
    head_channels, num_heads = unet.get("num_head_channels", -1), unet.get("num_heads", -1)
    if (
        not unet.get("use_spatial_transformer")
        or not isinstance(unet.get("num_res_blocks"), int)
        or (head_channels == -1 and num_heads == -1)
    ):
        raise CheckpointError(
            f"{where}: expected use_spatial_transformer: true, an int num_res_blocks, and "
            "num_heads or num_head_channels"
        )
    channels = [unet["model_channels"] * m for m in unet["channel_mult"]]
    heads = [c // head_channels if head_channels != -1 else num_heads for c in channels]
    attention = [2**i in unet["attention_resolutions"] for i in range(len(channels))]
    return {
        "sample_size": unet["image_size"],
        "in_channels": unet["in_channels"],
        "out_channels": unet["out_channels"],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "block_out_channels": channels,
        "layers_per_block": unet["num_res_blocks"],
        "attention_head_dim": heads,
        "cross_attention_dim": unet["context_dim"],
        "transformer_layers_per_block": unet.get("transformer_depth", 1),
        "use_linear_projection": unet.get("use_linear_in_transformer", False),
        "resnet_time_scale_shift": "scale_shift" if unet.get("use_scale_shift_norm") else "default",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "downsample_padding": 1,
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "act_fn": "silu",
        "center_input_sample": False,
        "upcast_attention": False,
    }


def first_stage_config_from_ldm(params: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """``("vq", VQModel config)`` or ``("kl", AutoencoderKL config)`` from ``first_stage_config``.

    Encoder/decoder: ``block_out_channels = ch · ch_mult`` (factor ``2**(len − 1)``), one vanilla
    attention block in each mid block; ``embed_dim`` is the codebook width (VQ) or must equal
    ``z_channels`` (KL, diffusers has no separate width).
    """
    stage = params["first_stage_config"]["params"]
    dd = stage["ddconfig"]
    _require(
        dd,
        {
            "attn_resolutions": [],
            "give_pre_end": False,
            "tanh_out": False,
            "attn_type": "vanilla",
            "use_linear_attn": False,
        },
        where,
    )
    n = len(dd["ch_mult"])
    config = {
        "in_channels": dd["in_channels"],
        "out_channels": dd["out_ch"],
        "sample_size": dd["resolution"],
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": [dd["ch"] * m for m in dd["ch_mult"]],
        "layers_per_block": dd["num_res_blocks"],
        "latent_channels": dd["z_channels"],
        "act_fn": "silu",
        "norm_num_groups": 32,
        "scaling_factor": float(params.get("scale_factor", 1.0)),
        "mid_block_add_attention": True,
    }
    if params["first_stage_config"]["target"] == KL_TARGET:
        if not dd.get("double_z", True) or stage["embed_dim"] != dd["z_channels"]:
            raise CheckpointError(f"{where}: KL first stage needs double_z: true and embed_dim == z_channels")
        return "kl", config
    if dd.get("double_z", False):
        raise CheckpointError(f"{where}: VQ first stage needs double_z: false")
    return "vq", {
        **config,
        "num_vq_embeddings": stage["n_embed"],
        "vq_embed_dim": stage["embed_dim"],
        "norm_type": "group",
        "lookup_from_codebook": False,
    }
