"""Test stand-in for the ``open_clip`` package (``open_clip_torch`` cannot be installed offline).

It offers the three things :func:`ldce.classifiers.zero_shot.open_clip_zero_shot` uses — ``create_model`` with a
local ``pretrained`` file (loaded strictly), ``get_tokenizer`` and a model with ``encode_image`` /
``encode_text`` — on a tiny random CLIP-like model, so that the Pets configuration runs end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

CONTEXT = 77


class TinyClip(nn.Module):
    """A convolutional image tower and a bag-of-characters text tower, both 16-d."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16)
        )
        self.token_embedding = nn.Embedding(128, 16)

    def encode_image(self, images: Tensor) -> Tensor:
        return self.visual(images)

    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.token_embedding(tokens).mean(dim=1)


def create_model(model_name: str, pretrained: str | None = None) -> TinyClip:
    """A ``TinyClip`` with the weights of the local file ``pretrained``."""
    model = TinyClip()
    model.load_state_dict(torch.load(Path(pretrained), map_location="cpu", weights_only=True))
    return model


def get_tokenizer(model_name: str) -> Callable[[list[str]], Tensor]:
    """Character codes, padded with spaces (and cut) to 77 tokens."""
    return lambda texts: torch.tensor([[min(ord(c), 127) for c in text[:CONTEXT].ljust(CONTEXT)] for text in texts])


def write_weights(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save(TinyClip().state_dict(), path)
    return path
