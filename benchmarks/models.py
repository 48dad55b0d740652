"""Backbone/classifier pairs for timing, built from configs with random weights (timing needs no training),
and the demo's trained pair.

- ``tiny``: the tests' class-conditional LDM (3×8×8 latents, 32² images) and a small CNN;
- ``demo``: the quickstart's trained Fashion-MNIST LDM and classifier (``ldce.demo``, shipped weights);
- ``mid``: a class-conditional LDM with a 128-channel UNet on 3×16×16 latents, 64² images, ResNet-18;
- ``cin256``: the shapes of the CompVis ImageNet model cin256-v2 (VQ-f4, 3×64×64 latents), ResNet-50;
- ``sd256``: Stable Diffusion 1.x's UNet and VAE at 256² (miniSD's shape), CLIP ViT-L/14-sized text tower, ResNet-50;
- ``dit256``: DiT-XL/2 at 256² on SD's VAE, ResNet-50.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
import yaml
from diffusers import AutoencoderKL, DiTTransformer2DModel, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModel

from ldce import demo
from ldce.backbones.base import Backbone
from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.dit import DiT
from ldce.backbones.paper import CIN256_V2_CONFIG
from ldce.backbones.stable_diffusion import StableDiffusion
from ldce.classifiers import IMAGENET_MEAN, IMAGENET_STD, ClassifierWrapper, Preprocessing
from ldce.demo.models import fashion_cnn
from ldce.testing.models import (
    clip_text_config,
    tiny_class_conditional_ldm,
    tiny_clip_tokenizer,
    tiny_ldm_params,
    tiny_vae,
)


def imagenet_classifier(name: str, resize: int | None) -> nn.Module:
    model = torchvision.models.get_model(name, weights=None)
    crop = 224 if resize else None
    return ClassifierWrapper(model, Preprocessing(resize, crop, IMAGENET_MEAN, IMAGENET_STD))


def sd_vae() -> AutoencoderKL:
    """SD 1.x's autoencoder (f8, 4 latent channels) at 256², random."""
    return tiny_vae((128, 256, 512, 512), layers_per_block=2, image_size=256)


def mid_ldm() -> ClassConditionalLDM:
    params = tiny_ldm_params(1000)
    unet = params["unet_config"]["params"]
    unet.update(
        image_size=16,
        model_channels=128,
        channel_mult=[1, 2, 2],
        attention_resolutions=[2, 4],
        num_head_channels=32,
        context_dim=128,
    )
    params["first_stage_config"]["params"]["ddconfig"].update(resolution=64, ch=64)
    params["cond_stage_config"]["params"]["embed_dim"] = 128
    return ClassConditionalLDM.random(params)


def cin256() -> ClassConditionalLDM:
    return ClassConditionalLDM.random(yaml.safe_load(CIN256_V2_CONFIG.read_text())["model"]["params"])


def sd256() -> StableDiffusion:
    unet = UNet2DConditionModel(
        sample_size=32,
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
    )
    tokenizer = tiny_clip_tokenizer()
    text = CLIPTextModel(clip_text_config(len(tokenizer), 768, layers=12, heads=12, mlp_ratio=4))
    return StableDiffusion(unet, sd_vae(), text, tokenizer, [f"class {i}" for i in range(1000)])


def dit256() -> DiT:
    transformer = DiTTransformer2DModel(
        num_attention_heads=16,
        attention_head_dim=72,
        in_channels=4,
        out_channels=8,
        num_layers=28,
        sample_size=32,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    return DiT(transformer, sd_vae())


MODELS: dict[str, Callable[[], tuple[Backbone, nn.Module]]] = {
    "tiny": lambda: (tiny_class_conditional_ldm(), fashion_cnn()),
    "demo": lambda: (demo.backbone(), demo.classifier()),
    "mid": lambda: (mid_ldm(), imagenet_classifier("resnet18", None)),
    "cin256": lambda: (cin256(), imagenet_classifier("resnet50", 256)),
    "sd256": lambda: (sd256(), imagenet_classifier("resnet50", 256)),
    "dit256": lambda: (dit256(), imagenet_classifier("resnet50", 256)),
}


def build(name: str, seed: int = 0) -> tuple[Backbone, nn.Module]:
    """The backbone and classifier of ``name`` in eval mode, frozen."""
    torch.manual_seed(seed)
    backbone, classifier = MODELS[name]()
    return backbone.eval().requires_grad_(False), classifier.eval().requires_grad_(False)
