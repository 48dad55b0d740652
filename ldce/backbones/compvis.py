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

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from safetensors.torch import load_file
from torch import Tensor, nn

from ldce.backbones.base import linear_alphas_cumprod

UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."
CLASS_TABLE_KEY = "cond_stage_model.embedding.weight"
EMA_PREFIX = "model_ema."
SCHEDULE_BUFFERS = frozenset(
    "betas alphas_cumprod alphas_cumprod_prev sqrt_alphas_cumprod sqrt_one_minus_alphas_cumprod "
    "log_one_minus_alphas_cumprod sqrt_recip_alphas_cumprod sqrt_recipm1_alphas_cumprod posterior_variance "
    "posterior_log_variance_clipped posterior_mean_coef1 posterior_mean_coef2".split()
)
VQ_TARGETS = ("ldm.models.autoencoder.VQModelInterface", "ldm.models.autoencoder.VQModel")
KL_TARGET = "ldm.models.autoencoder.AutoencoderKL"
CLASS_EMBEDDER_TARGET = "ldm.modules.encoders.modules.ClassEmbedder"
UNET_TARGET = "ldm.modules.diffusionmodules.openaimodel.UNetModel"


class CheckpointError(ValueError):
    """A checkpoint or config that cannot be converted; the message names the file."""


@dataclass(frozen=True)
class LDMSpec:
    """An LDM yaml's ``model.params`` and the diffusers configs built from it."""

    params: dict[str, Any]
    unet_config: dict[str, Any]
    first_stage_kind: str
    first_stage_config: dict[str, Any]


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
    raise CheckpointError(f"{where}: expected a class-conditional LDM ({UNET_TARGET}, a VQ or KL first stage, "
                          f"{CLASS_EMBEDDER_TARGET}, crossattn, eps); found {found}")


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
    _require(unet, {"use_spatial_transformer": True, "resblock_updown": False, "dims": 2, "num_classes": None,
                    "conv_resample": True, "disable_self_attentions": None,
                    "num_attention_blocks": None, "disable_middle_self_attn": False}, where)
    head_channels, num_heads = unet.get("num_head_channels", -1), unet.get("num_heads", -1)
    if not unet.get("use_spatial_transformer") or not isinstance(unet.get("num_res_blocks"), int) or (
        head_channels == -1 and num_heads == -1
    ):
        raise CheckpointError(f"{where}: expected use_spatial_transformer: true, an int num_res_blocks, and "
                              "num_heads or num_head_channels")
    channels = [unet["model_channels"] * m for m in unet["channel_mult"]]
    heads = [c // head_channels if head_channels != -1 else num_heads for c in channels]
    attention = [2**i in unet["attention_resolutions"] for i in range(len(channels))]
    return {
        "sample_size": unet["image_size"], "in_channels": unet["in_channels"], "out_channels": unet["out_channels"],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "mid_block_type": "UNetMidBlock2DCrossAttn", "block_out_channels": channels,
        "layers_per_block": unet["num_res_blocks"], "attention_head_dim": heads,
        "cross_attention_dim": unet["context_dim"], "transformer_layers_per_block": unet.get("transformer_depth", 1),
        "use_linear_projection": unet.get("use_linear_in_transformer", False),
        "resnet_time_scale_shift": "scale_shift" if unet.get("use_scale_shift_norm") else "default",
        "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1, "norm_num_groups": 32,
        "norm_eps": 1e-5, "act_fn": "silu", "center_input_sample": False, "upcast_attention": False,
    }


def first_stage_config_from_ldm(params: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """``("vq", VQModel config)`` or ``("kl", AutoencoderKL config)`` from ``first_stage_config``.

    Encoder/decoder: ``block_out_channels = ch · ch_mult`` (factor ``2**(len − 1)``), one vanilla
    attention block in each mid block; ``embed_dim`` is the codebook width (VQ) or must equal
    ``z_channels`` (KL, diffusers has no separate width).
    """
    stage = params["first_stage_config"]["params"]
    dd = stage["ddconfig"]
    _require(dd, {"attn_resolutions": [], "give_pre_end": False, "tanh_out": False, "attn_type": "vanilla",
                  "use_linear_attn": False}, where)
    n = len(dd["ch_mult"])
    config = {
        "in_channels": dd["in_channels"], "out_channels": dd["out_ch"], "sample_size": dd["resolution"],
        "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": [dd["ch"] * m for m in dd["ch_mult"]], "layers_per_block": dd["num_res_blocks"],
        "latent_channels": dd["z_channels"], "act_fn": "silu", "norm_num_groups": 32,
        "scaling_factor": float(params.get("scale_factor", 1.0)), "mid_block_add_attention": True,
    }
    if params["first_stage_config"]["target"] == KL_TARGET:
        if not dd.get("double_z", True) or stage["embed_dim"] != dd["z_channels"]:
            raise CheckpointError(f"{where}: KL first stage needs double_z: true and embed_dim == z_channels")
        return "kl", config
    if dd.get("double_z", False):
        raise CheckpointError(f"{where}: VQ first stage needs double_z: false")
    return "vq", {**config, "num_vq_embeddings": stage["n_embed"], "vq_embed_dim": stage["embed_dim"],
                  "norm_type": "group", "lookup_from_codebook": False}


def load_compvis_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a ``.safetensors`` or torch (``.ckpt``/``.pt``/``.pth``) state dict, unwrapping ``state_dict``.

    Torch files are read with ``weights_only=True`` (no code from the file runs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LDM checkpoint {path} not found (expected a CompVis LatentDiffusion state dict)")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: holds objects other than tensors ({err}); if you trust it, re-save its state_dict "
            "with safetensors and pass that file"
        ) from err
    except Exception as err:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({err})") from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (optionally under 'state_dict')")
    return state


def renamed_tensors(converted: dict[str, Tensor | None], source: dict[str, Tensor]) -> tuple[dict[str, Tensor], set[str]]:
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
        raise CheckpointError(f"{where}: {len(unused)} source keys not consumed (wrong architecture?): "
                              f"{sorted(unused)}")
    return ConvertedLDM(
        spec, {k: v.float() for k, v in unet_state.items()}, {k: v.float() for k, v in stage_state.items()},
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


def check_state_dict(model: nn.Module, state: dict[str, Tensor], where: str) -> None:
    """Every target key of ``model`` filled with the right shape, and no extra key."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, extra = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    wrong = sorted(f"{k}: {tuple(state[k].shape)} vs {target[k]}" for k in set(state) & set(target)
                   if tuple(state[k].shape) != target[k])
    if missing or extra or wrong:
        raise CheckpointError(
            f"{where}: does not fit {type(model).__name__} (wrong architecture?): missing {missing}, "
            f"unexpected {extra}, shape mismatches {wrong}"
        )


def materialise(
    model_class: type[nn.Module], config: dict[str, Any], state: dict[str, Tensor], where: str
) -> nn.Module:
    """Build ``model_class(**config)`` without random init and load ``state`` into it (strict)."""
    with torch.device("meta"):
        model = model_class(**config)
    check_state_dict(model, state, where)
    model.load_state_dict(state, strict=True, assign=True)
    return model
