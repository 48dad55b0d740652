"""A toy latent diffusion backbone and classifier: small, random, fast, exact to reason about."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone, Networks, linear_alphas_cumprod
from ldce.testing.models import small_cnn


class ToyBackbone(Backbone):
    """Conv first stage (f = 2, 4 latent channels), conv noise model, 10 classes + null row 10."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Conv2d(3, 4, 2, stride=2)
        self.decoder = nn.ConvTranspose2d(4, 3, 2, stride=2)
        self.net = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 4, 3, padding=1))
        self.table = nn.Embedding(11, 4)
        self.register_buffer("alphas_cumprod", linear_alphas_cumprod(0.0015, 0.0195))
        self.scale_factor = 0.5
        self.image_size = 8
        self.requires_grad_(False)

    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.scale_factor * self.encoder(2 * images - 1)

    def decode(self, latents: Tensor) -> Tensor:
        return (self.decoder(latents / self.scale_factor) + 1) / 2

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        context = cond[:, :, None, None].expand_as(latents)
        return self.net(torch.cat([latents, context], 1)) * (1 + timesteps[:, None, None, None] / 1000)

    def conditioning(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        return self.table(targets), self.table(torch.full_like(targets, 10))

    def networks(self) -> Networks:
        return Networks(self.net, self.decoder, self.decoder)


def toy_classifier(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    return net.eval().requires_grad_(False)


def toy_images(n: int, seed: int = 2) -> Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


class ToyClassifier(nn.Module):
    """A small CNN over [0, 1] RGB images of any size, 10 classes (importable by class path in configs)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = small_cnn(num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)
