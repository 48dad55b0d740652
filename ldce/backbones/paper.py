"""The paper's diffusion models from their released files, offline: cin256-v2 and miniSD.

Both take the original checkpoint as downloaded (a PyTorch Lightning ``.ckpt``, or a ``.safetensors``
of the same state dict) and a local config in the original ldm format; the packaged
``configs/cin256-v2.yaml`` and ``configs/minisd-inference.yaml`` are used by default. Training
bookkeeping in a ``.ckpt`` is never executed (see :mod:`ldce.checkpoints`). Every problem — a
missing, truncated or foreign file, or one of another architecture — raises before anything is
computed, naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.stable_diffusion import StableDiffusion
from ldce.checkpoints import existing_dir, existing_file
from ldce.classifiers.names import read_class_names

CONFIGS = Path(__file__).resolve().parent / "configs"
CIN256_V2_CONFIG = CONFIGS / "cin256-v2.yaml"
MINISD_CONFIG = CONFIGS / "minisd-inference.yaml"


def cin256_v2(
    checkpoint_path: str, cache_dir: str | None = None, config_path: str | None = None, use_ema: bool = False
) -> ClassConditionalLDM:
    """The ImageNet class-conditional LDM of Table 1/2 from its released ``model.ckpt``.

    Args:
        checkpoint_path: the released checkpoint (``.ckpt``) or a ``.safetensors`` of its state dict.
        cache_dir: folder for the converted diffusers copy (in ``diffusers/``, about 1.8 GB); later
            runs reuse it while the checkpoint is unchanged. ``None``: convert on every run.
        config_path: the model's ldm yaml; ``None``: the packaged ``cin256-v2.yaml``.
        use_ema: take the UNet from ``model_ema.*`` (the released config does not use EMA weights).
    """
    config = existing_file(config_path or CIN256_V2_CONFIG, "LDM config (the cin256-v2 ldm yaml)")
    existing_file(checkpoint_path, "the CompVis cin256-v2 LDM checkpoint (model.ckpt)")
    diffusers_dir = None if cache_dir is None else Path(cache_dir) / "diffusers"
    return ClassConditionalLDM.from_compvis(checkpoint_path, config, cache_dir=diffusers_dir, use_ema=use_ema)


def mini_sd(
    checkpoint_path: str,
    text_encoder_dir: str,
    class_names: list[str] | str,
    prompt_template: str = "a photo of a {}.",
    null_prompt: str = "",
    config_path: str | None = None,
    use_ema: bool = False,
) -> StableDiffusion:
    """miniSD (text-conditional, 256 px) from its original checkpoint, for Tables 1, 2 and 6 and the
    Flowers-102 / Oxford-IIIT Pets experiments.

    Args:
        checkpoint_path: ``miniSD.ckpt`` (or another SD 1.x single-file checkpoint).
        text_encoder_dir: a local CLIP ViT-L/14 text model + tokenizer folder (e.g. a copy of
            ``openai/clip-vit-large-patch14``); the checkpoint's own text weights replace its weights.
        class_names: names indexed by target class, or a file of them (one per line).
        prompt_template: ``{}`` is replaced by the target's class name.
        null_prompt: the unconditional prompt.
        config_path: the ldm yaml; ``None``: the packaged ``minisd-inference.yaml`` (256 px).
        use_ema: take the UNet from ``model_ema.*`` (the reference loads the non-EMA weights).
    """
    names = read_class_names(class_names)
    config = existing_file(config_path or MINISD_CONFIG, "original SD config (an ldm yaml)")
    existing_dir(text_encoder_dir, "CLIP text encoder folder")
    return StableDiffusion.from_single_file(
        checkpoint_path,
        config,
        text_encoder_dir,
        names,
        use_ema=use_ema,
        prompt_template=prompt_template,
        null_prompt=null_prompt,
    )
