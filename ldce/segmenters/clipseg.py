"""CLIPSeg prompted with each input's source class name: the original project's ``masked_guidance``.

    prompt_b = title-cased name of class c_b           (the original: ``"Sorrel"``, ``"Zebra"``)
    p_b      = σ(CLIPSeg(resize(x_b, S), prompt_b))    (B, S, S) → resized back to (B, H, W)

``S`` is the model's own input side (352 for the published CLIPSeg). The min–max normalisation and
sigmoid sharpening with ``mask_alpha`` follow in ``ldce.method.region.masks.sharpened``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldce.checkpoints.reader import existing_dir
from ldce.classifiers.names import read_class_names

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPSegSegmenter(nn.Module):
    """``(images (B, 3, H, W) in [0, 1], classes int64 (B,)) → probabilities (B, H, W) in [0, 1]``.

    Args:
        model: a ``transformers`` ``CLIPSegForImageSegmentation``.
        tokenizer: its CLIP tokenizer.
        class_names: the prompt of each class index.
    """

    def __init__(self, model: nn.Module, tokenizer, class_names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.tokenizer, self.class_names = model.eval().requires_grad_(False), tokenizer, list(class_names)
        self.side = model.config.vision_config.image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def prompts(self, classes: Tensor) -> list[str]:
        """The prompt of each class in ``classes`` ``(B,)``; ``ValueError`` for a class without a name."""
        outside = [int(c) for c in classes if not 0 <= int(c) < len(self.class_names)]
        if outside:
            raise ValueError(f"classes {outside} have no name among the segmenter's {len(self.class_names)}")
        return [self.class_names[int(c)].title() for c in classes]

    @torch.no_grad()
    def forward(self, images: Tensor, classes: Tensor) -> Tensor:
        tokens = self.tokenizer(self.prompts(classes), padding=True, return_tensors="pt").to(images.device)
        pixels = F.interpolate(images.float(), size=(self.side, self.side), mode="bilinear", align_corners=False)
        pixels = (pixels - self.mean) / self.std
        logits = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels)
        logits = logits.logits.reshape(len(images), 1, self.side, self.side)
        probabilities = torch.sigmoid(logits)
        return F.interpolate(probabilities, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def clipseg(path: str, class_names: list[str] | str) -> CLIPSegSegmenter:
    """CLIPSeg from a local folder (``save_pretrained`` of the model and its tokenizer, e.g. a download of
    ``CIDAS/clipseg-rd64-refined``), prompted with ``class_names`` (a list or a file). Never downloads.
    Raises ``FileNotFoundError`` for a missing folder."""
    from transformers import CLIPSegForImageSegmentation, CLIPTokenizer

    folder = existing_dir(path, "CLIPSeg folder")
    names = read_class_names(class_names)
    model = CLIPSegForImageSegmentation.from_pretrained(folder, local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    return CLIPSegSegmenter(model, tokenizer, names)
