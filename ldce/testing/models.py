"""Tiny randomly initialised backbones with the structure of the real ones, for tests and timing.

Everything is built from configs (no download); channels are multiples of 32 (GroupNorm's 32 groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel, UNet2DConditionModel
from torch import nn
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ldce.backbones import ldm_config
from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.dit import DiT
from ldce.backbones.stable_diffusion import StableDiffusion


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """Two strided 3×3 convolutions, average pool, linear: [0, 1] images of any size → ``(B, num_classes)``
    (the golden vectors' classifier)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, 2, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def tiny_ldm_params(num_classes: int = 10, first_stage: str = "vq") -> dict[str, Any]:
    """``model.params`` of a tiny cin256-v2-shaped LDM (f4 first stage, 32-channel UNet, context 32)."""
    vq = first_stage == "vq"
    unet = {
        "image_size": 8,
        "in_channels": 3,
        "out_channels": 3,
        "model_channels": 32,
        "attention_resolutions": [2],
        "num_res_blocks": 1,
        "channel_mult": [1, 2],
        "num_head_channels": 8,
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": 32,
    }
    ddconfig = {
        "double_z": not vq,
        "z_channels": 3,
        "resolution": 32,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 32,
        "ch_mult": [1, 2, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    return {
        "linear_start": 0.0015,
        "linear_end": 0.0195,
        "timesteps": 1000,
        "conditioning_key": "crossattn",
        "unet_config": {"target": ldm_config.UNET_TARGET, "params": unet},
        "first_stage_config": {
            "target": ldm_config.VQ_TARGETS[0] if vq else ldm_config.KL_TARGET,
            "params": {"embed_dim": 3, "n_embed": 64, "ddconfig": ddconfig},
        },
        "cond_stage_config": {
            "target": ldm_config.CLASS_EMBEDDER_TARGET,
            "params": {"n_classes": num_classes + 1, "embed_dim": 32},
        },
    }


def tiny_class_conditional_ldm(num_classes: int = 10, first_stage: str = "vq", seed: int = 0) -> ClassConditionalLDM:
    """A random cin256-v2-shaped model: 32×32 images, 3×8×8 latents, ``num_classes`` + null.

    Args:
        num_classes: real classes; the class table has one more row, the null class.
        first_stage: ``vq`` (as cin256-v2) or ``kl``.
        seed: seeds the random weights.
    """
    return ClassConditionalLDM.random(tiny_ldm_params(num_classes, first_stage), seed, "tiny_class_conditional_ldm")


def tiny_vae(block_out_channels: tuple[int, ...], layers_per_block: int, image_size: int) -> AutoencoderKL:
    """A random ``AutoencoderKL`` (4 latent channels, downsampling ``2^(len(block_out_channels) − 1)``)."""
    levels = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=image_size,
        scaling_factor=0.18215,
    )


def tiny_unet(
    block_out_channels: tuple[int, ...], layers_per_block: int, latent_size: int, cross_attention_dim: int
) -> UNet2DConditionModel:
    """A random SD-1.x-shaped UNet: 4 latent channels, 2 heads, cross-attention except at the last level."""
    levels = len(block_out_channels)
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=block_out_channels,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=32,
    )


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A character-level CLIP BPE tokenizer (printable ASCII, no merges), built offline.

    Vocabulary as CLIP's base alphabet: each character with and without the end-of-word
    suffix ``</w>``; ``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1 (also pad and unknown).
    """
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in map(chr, range(33, 127)):
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def save_tiny_clipseg(folder: str, image_size: int = 32, seed: int = 0) -> str:
    """A random-weight CLIPSeg (2-layer text and vision towers, width 32) and the character tokenizer,
    saved to ``folder`` as ``ldce.segmenters.clipseg`` loads them; returns ``folder``."""
    tokenizer = tiny_clip_tokenizer()
    config = CLIPSegConfig(
        text_config=clip_text_config(len(tokenizer), 32).to_dict(),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
        extract_layers=[0, 1],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    torch.manual_seed(seed)
    CLIPSegForImageSegmentation(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def clip_text_config(
    vocab_size: int, hidden_size: int, layers: int = 2, heads: int = 2, mlp_ratio: int = 2
) -> CLIPTextConfig:
    """A CLIP text transformer with SD's 77 positions (SD 1.x's own: width 768, 12 layers, 12 heads, ratio 4)."""
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=mlp_ratio * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_stable_diffusion(
    class_names: Sequence[str],
    image_size: int = 32,
    unet_channels: tuple[int, ...] = (32, 64),
    vae_channels: tuple[int, ...] = (32, 64, 64),
    layers_per_block: int = 1,
    seed: int = 0,
    **kwargs: Any,
) -> StableDiffusion:
    """A random model with SD 1.x's structure: cross-attention at every UNet level but the last,
    CLIP width 32, a character-level CLIP tokenizer. kwargs: see ``StableDiffusion``."""
    latent_size = image_size // 2 ** (len(vae_channels) - 1)
    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = tiny_unet(unet_channels, layers_per_block, latent_size, cross_attention_dim=32)
        vae = tiny_vae(vae_channels, layers_per_block, image_size)
        text_encoder = CLIPTextModel(clip_text_config(len(tokenizer), hidden_size=32))
    return StableDiffusion(unet, vae, text_encoder, tokenizer, class_names, **kwargs)


def tiny_dit(
    num_classes: int = 10,
    image_size: int = 32,
    vae_channels: tuple[int, ...] = (32, 64, 64),
    learned_sigma: bool = True,
    seed: int = 0,
    **kwargs: Any,
) -> DiT:
    """A random DiT (2 layers, 2 heads of 16, patch 2) on a tiny f4 KL autoencoder. kwargs: see ``DiT``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = tiny_vae(vae_channels, layers_per_block=1, image_size=image_size)
        transformer = DiTTransformer2DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            out_channels=8 if learned_sigma else 4,
            num_layers=2,
            sample_size=image_size // 2 ** (len(vae_channels) - 1),
            patch_size=2,
            num_embeds_ada_norm=num_classes,
        )
    return DiT(transformer, vae, **kwargs)
