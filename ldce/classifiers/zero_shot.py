"""Zero-shot CLIP classifiers (the Oxford-IIIT Pets experiment: OpenCLIP ViT-B/32), offline.

Class ``k``'s weight is the normalised text embedding of ``template.format(names[k])``
(``"a photo of a {}, a type of pet."``); the logits of an image are ``100 · ⟨f(x)/|f(x)|, w_k⟩``,
with the fixed scale 100 of the reference. The image tower takes a 224 px centre crop of the
256 px image with CLIP's normalisation. OpenCLIP is an optional dependency
(``pip install "ldce[openclip]"``, i.e. ``open_clip_torch``); the weights come from a local file
(``open_clip_pytorch_model.bin`` of ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``), never from the hub.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from ldce.classifiers.names import read_class_names
from ldce.classifiers.wrapper import ClassifierWrapper, Preprocessing

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PETS_TEMPLATE = "a photo of a {}, a type of pet."
LOGIT_SCALE = 100.0
EXTRA = 'pip install "ldce[openclip]"  (the open_clip_torch package)'


def zero_shot_prompts(class_names: Sequence[str], template: str) -> list[str]:
    """One prompt per class, in class order: ``template.format(name)``."""
    if "{}" not in template:
        raise ValueError(f"template must contain '{{}}' for the class name, got {template!r}")
    if not class_names:
        raise ValueError("class_names must name at least one class")
    return [template.format(name) for name in class_names]


class ZeroShotClassifier(nn.Module):
    """``LOGIT_SCALE · normalise(encode_image(x)) @ class_weights.T``: logits ``(B, K)``.

    image_encoder: ``(B, 3, h, w)`` normalised → ``(B, D)``; class_weights: ``(K, D)``, unit rows.
    """

    def __init__(self, image_encoder: nn.Module, class_weights: Tensor) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.register_buffer("class_weights", class_weights)

    def forward(self, images: Tensor) -> Tensor:
        """images: preprocessed ``(B, 3, h, w)``. Returns logits ``(B, K)``."""
        features = self.image_encoder(images)
        return LOGIT_SCALE * features / features.norm(dim=-1, keepdim=True) @ self.class_weights.t()


class _ImageTower(nn.Module):
    """``model.encode_image`` as a module, so that the wrapper owns (and freezes) the CLIP model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        """Image embeddings ``(B, D)``."""
        return self.model.encode_image(images)


@torch.no_grad()
def text_class_weights(
    encode_text: Callable[[Tensor], Tensor], tokenizer: Callable[[list[str]], Tensor], prompts: list[str]
) -> Tensor:
    """Unit-norm text embeddings of ``prompts``, ``(K, D)``."""
    features = encode_text(tokenizer(prompts))
    return features / features.norm(dim=-1, keepdim=True)


def import_open_clip() -> ModuleType:
    """The ``open_clip`` package, or an ``ImportError`` that says how to install it."""
    try:
        return importlib.import_module("open_clip")
    except ImportError as error:
        raise ImportError(
            f"the zero-shot OpenCLIP classifier needs the optional dependency open_clip_torch: {EXTRA}"
        ) from error


OPEN_CLIP_PREPROCESSING = Preprocessing(crop=224, mean=CLIP_MEAN, std=CLIP_STD)


def open_clip_zero_shot(
    weights_path: str,
    class_names: list[str] | str,
    template: str = PETS_TEMPLATE,
    model_name: str = "ViT-B-32",
    preprocessing: Preprocessing = OPEN_CLIP_PREPROCESSING,
) -> ClassifierWrapper:
    """OpenCLIP ``model_name`` with local weights as a zero-shot classifier over ``class_names``.

    Args:
        weights_path: the OpenCLIP weight file (e.g. ``open_clip_pytorch_model.bin`` of
            laion2b_s34b_b79k for ViT-B-32).
        class_names: names indexed by class, or a file of them (one per line).
        template: the prompt, ``{}`` replaced by a class name.
        model_name: OpenCLIP architecture name.
        preprocessing: of the [0, 1] image: OpenCLIP's centre crop 224 and normalisation.
    """
    open_clip = import_open_clip()
    if not Path(weights_path).is_file():
        raise FileNotFoundError(f"OpenCLIP weights {weights_path} not found (expected a local {model_name} file)")
    prompts = zero_shot_prompts(read_class_names(class_names), template)
    try:
        model = open_clip.create_model(model_name, pretrained=str(weights_path)).eval()
    except Exception as error:
        raise ValueError(f"OpenCLIP weights {weights_path}: unreadable or not {model_name} ({error})") from error
    weights = text_class_weights(model.encode_text, open_clip.get_tokenizer(model_name), prompts)
    return ClassifierWrapper(ZeroShotClassifier(_ImageTower(model), weights), preprocessing)
