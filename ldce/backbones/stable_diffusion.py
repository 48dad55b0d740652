"""Text-conditional latent diffusion (Stable Diffusion 1.x, miniSD) as an LDCE :class:`Backbone`.

Components are diffusers/transformers modules: ``UNet2DConditionModel`` (noise model),
``AutoencoderKL`` (first stage, ``s = 0.18215``), ``CLIPTextModel`` + ``CLIPTokenizer``. A target
class ``y`` conditions the UNet with the CLIP embedding of ``prompt_template.format(class_names[y])``
and the null conditioning ``u`` is the embedding of ``null_prompt`` (``""``), both ``(B, 77, D)``:
the last hidden state, as SD's ``FrozenCLIPEmbedder`` returns it. Everything loads from local
paths only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import Tensor
from transformers import CLIPTextModel, CLIPTokenizer

from ldce.backbones import sd_original
from ldce.backbones.base import Networks, check_targets
from ldce.backbones.kl_backbone import KLBackbone, read_scheduler_config, require_component
from ldce.checkpoints import existing_dir, existing_file

SD_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
}
V1_INFERENCE_CONFIG = sd_original.V1_INFERENCE_CONFIG
SLOW_TOKENIZER_FILES = ("vocab.json", "merges.txt")


class StableDiffusion(KLBackbone):
    """``eps(z, t, c) = unet(z, t, encoder_hidden_states=c)`` with CLIP text conditioning.

    class_names: the classifier's class names, indexed by target; prompt_template: one ``{}``
    field for the class name; scheduler_config: diffusers scheduler config (default SD's
    ``scaled_linear`` 0.00085..0.012, 1000 steps). Parameters are frozen, modules in eval mode.
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        class_names: Sequence[str],
        prompt_template: str = "a photo of a {}.",
        null_prompt: str = "",
        scheduler_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(vae, unet.config.sample_size, scheduler_config or SD_SCHEDULER_CONFIG)
        if not class_names:
            raise ValueError("class_names must name at least one class")
        if "{}" not in prompt_template:
            raise ValueError(f"prompt_template must contain '{{}}' for the class name, got {prompt_template!r}")
        self.unet, self.text_encoder, self.tokenizer = unet, text_encoder, tokenizer
        self.class_names, self.prompt_template, self.null_prompt = list(class_names), prompt_template, null_prompt
        self._freeze()

    def networks(self) -> Networks:
        return Networks(self.unet, self.vae, self.vae.decoder)

    def prompts(self, targets: Tensor) -> list[str]:
        """``prompt_template.format(class_names[y])`` for each target ``y`` (validated)."""
        check_targets(targets, len(self.class_names))
        return [self.prompt_template.format(self.class_names[y]) for y in targets.tolist()]

    @torch.no_grad()
    def embed_prompts(self, prompts: list[str]) -> Tensor:
        """CLIP last hidden states ``(N, L, D)``, prompts padded/truncated to ``L`` (77) tokens as in SD."""
        length = self.text_encoder.config.max_position_embeddings
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        ).input_ids
        return self.text_encoder(ids.to(self.device)).last_hidden_state

    def conditioning(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(c, u)``: embeddings of the targets' prompts and of the null prompt, each ``(B, 77, D)``."""
        prompts = self.prompts(targets)
        embeddings = self.embed_prompts(prompts + [self.null_prompt] * len(prompts))
        return embeddings[: len(prompts)], embeddings[len(prompts) :]

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        """``eps(z, t, c)``: latents ``(B, 4, h, w)``, timesteps int64 ``(B,)``, cond ``(B, 77, D)``."""
        return self.unet(latents, timesteps, encoder_hidden_states=cond).sample

    @classmethod
    def from_pretrained(cls, local_dir: str | Path, class_names: Sequence[str], **kwargs: Any) -> StableDiffusion:
        """Load a local diffusers folder: ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, and
        ``scheduler/scheduler_config.json`` if present (else SD's schedule). kwargs: see ``__init__``."""
        folder = existing_dir(local_dir, "Stable Diffusion folder")
        for component in ("unet", "vae"):
            require_component(folder, component)
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
        text_encoder, tokenizer = load_clip_text(folder)
        kwargs.setdefault("scheduler_config", read_scheduler_config(folder, SD_SCHEDULER_CONFIG))
        return cls(unet, vae, text_encoder, tokenizer, class_names, **kwargs)

    @classmethod
    def from_single_file(
        cls,
        checkpoint: str | Path,
        original_config: str | Path | None,
        text_encoder_dir: str | Path,
        class_names: Sequence[str],
        use_ema: bool = False,
        **kwargs: Any,
    ) -> StableDiffusion:
        """Load an original SD 1.x checkpoint (``.ckpt``/``.safetensors``) with its local yaml.

        original_config: the LDM yaml (``None``: the packaged ``v1-inference.yaml``, 512 px; miniSD
        needs its own with ``image_size: 32``). text_encoder_dir: a local CLIP text model + tokenizer
        folder (flat, or with ``text_encoder/`` and ``tokenizer/``); the checkpoint's own
        ``cond_stage_model.transformer.*`` weights, when present, replace its weights.
        use_ema: take the UNet from ``model_ema.*``. The schedule comes from the yaml.
        """
        converted = sd_original.load_sd_checkpoint(checkpoint, original_config or V1_INFERENCE_CONFIG, use_ema)
        text_encoder, tokenizer = load_clip_text(existing_dir(text_encoder_dir, "CLIP text encoder folder"))
        if converted.text_state:
            sd_original.load_text_weights(text_encoder, converted.text_state, str(checkpoint))
        kwargs.setdefault("scheduler_config", converted.scheduler_config)
        return cls(converted.unet, converted.vae, text_encoder, tokenizer, class_names, **kwargs)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``) that
        :meth:`from_pretrained` reads back; returns the folder."""
        folder = super().save_pretrained(folder)
        self.unet.save_pretrained(folder / "unet")
        self.text_encoder.save_pretrained(folder / "text_encoder")
        self.tokenizer.save_pretrained(folder / "tokenizer")
        return folder


def load_clip_text(folder: Path) -> tuple[CLIPTextModel, CLIPTokenizer]:
    """CLIP text model and tokenizer from ``folder/text_encoder`` and ``folder/tokenizer`` when those
    exist, else from ``folder`` itself (e.g. a local ``openai/clip-vit-large-patch14``); local only."""
    model_dir, tokenizer_dir = (
        folder / name if (folder / name).is_dir() else folder for name in ("text_encoder", "tokenizer")
    )
    existing_file(model_dir / "config.json", "CLIP text encoder config")
    missing = [name for name in SLOW_TOKENIZER_FILES if not (tokenizer_dir / name).is_file()]
    if missing and not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"CLIP tokenizer incomplete: {str(tokenizer_dir)!r} lacks {' and '.join(missing)} "
            f"(a CLIP tokenizer needs vocab.json and merges.txt, or tokenizer.json)"
        )
    text_encoder = CLIPTextModel.from_pretrained(model_dir, local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    return text_encoder, tokenizer
