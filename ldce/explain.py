"""One call from images to counterfactual explanations: ``explain(images, targets, …)``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.classifiers import confidence, predict, target_probability
from ldce.config import LDCEConfig
from ldce.sampler import StepCallback, Task, first_rows, sample
from ldce.schedule import ddim_grid, noise_level, start_index


@dataclass(frozen=True)
class Counterfactuals:
    """Counterfactual images and their per-sample facts (``B`` samples).

    images: ``x_cf = clamp((D(z/s) + 1)/2, 0, 1)``, ``(B, 3, H, W)``; latents: final ``z`` ``(B, C, h, w)``;
    source_prediction / source_confidence: the classifier on the originals, ``(B,)``;
    prediction / confidence: the classifier on the counterfactuals, ``(B,)``;
    target_confidence: probability of the target on the counterfactuals, ``(B,)``;
    l1 / l2: ``||x − x_cf||_1`` and ``||x − x_cf||_2`` per image, ``(B,)``;
    consensus: share of steps each latent pixel was in consensus, ``(B, h, w)`` (projected guidance).
    """

    images: Tensor
    latents: Tensor
    source_prediction: Tensor
    source_confidence: Tensor
    prediction: Tensor
    confidence: Tensor
    target_confidence: Tensor
    l1: Tensor
    l2: Tensor
    consensus: Tensor | None

    def head(self, n: int) -> Counterfactuals:
        """The first ``n`` samples."""
        return Counterfactuals(**{f.name: first_rows(getattr(self, f.name), n) for f in fields(self)})

    @staticmethod
    def cat(parts: Sequence[Counterfactuals]) -> Counterfactuals:
        """Samples of several results, in order."""
        return Counterfactuals(**{f.name: _cat([getattr(p, f.name) for p in parts]) for f in fields(Counterfactuals)})


def _cat(values: list[Tensor | None]) -> Tensor | None:
    return None if values[0] is None else torch.cat(values)


def sample_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one sample from the run's seed and the sample's key."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw_noise(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> Tensor:
    """One standard normal ``(*shape)`` per sample, each from its own CPU generator: ``(B, *shape)``."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


@torch.no_grad()
def _facts(classifier: nn.Module, images: Tensor, counterfactuals: Tensor, targets: Tensor) -> dict[str, Tensor]:
    before, after = classifier(images), classifier(counterfactuals)
    diff = (counterfactuals - images).flatten(1)
    return {
        "source_prediction": predict(before),
        "source_confidence": confidence(before),
        "prediction": predict(after),
        "confidence": confidence(after),
        "target_confidence": target_probability(after, targets),
        "l1": diff.abs().sum(1),
        "l2": diff.square().sum(1).sqrt(),
    }


def explain(
    images: Tensor,
    targets: Tensor,
    backbone: Backbone,
    classifier: nn.Module,
    config: LDCEConfig | None = None,
    seed: int = 0,
    keys: Sequence[str] | None = None,
    callback: StepCallback | None = None,
    noise: Tensor | None = None,
) -> Counterfactuals:
    """Counterfactual explanations of ``classifier`` for ``images`` towards ``targets``.

    images: ``(B, 3, H, W)`` in [0, 1] at ``backbone.image_size``; targets: int64 ``(B,)``.
    Each sample's randomness (posterior sample, start noise ``ξ``, DDIM noise for ``η > 0``, in
    that order) comes from a generator seeded by ``(seed, key)``, so a result does not depend on
    the batch it shares; ``keys`` default to the batch positions ``"0" … "B−1"``. ``noise``
    ``(B, C, h, w)`` replaces the drawn start noise ``ξ`` (e.g. to reproduce another run).
    """
    config = config or LDCEConfig()
    keys = [str(i) for i in range(len(images))] if keys is None else list(keys)
    if len(keys) != len(images) or len(targets) != len(images):
        raise ValueError(f"got {len(images)} images, {len(targets)} targets and {len(keys)} keys")
    images, targets = images.to(backbone.device), targets.to(backbone.device)
    generators = [torch.Generator().manual_seed(sample_seed(seed, k)) for k in keys]
    with torch.no_grad():
        latent_shape = backbone.encode(images[:1]).shape[1:]
        z0 = backbone.encode(images, draw_noise(generators, latent_shape, images.device))
        cond, null = backbone.conditioning(targets)
    grid = ddim_grid(backbone.alphas_cumprod, config.ddim_steps, config.ddim_eta)
    start = start_index(config.strength, config.ddim_steps)
    z = z0
    if start > 0:
        sqrt_alpha, sqrt_one_minus_alpha = (v.to(z0.device) for v in noise_level(grid, start))
        xi = draw_noise(generators, latent_shape, z0.device) if noise is None else noise.to(z0.device)
        z = sqrt_alpha * z0 + sqrt_one_minus_alpha * xi
    step_noise = None
    if config.ddim_eta > 0 and start > 0:
        step_noise = torch.stack([draw_noise(generators, latent_shape, z0.device) for _ in range(start)]).flip(0)
    task = Task(images, targets, cond, null)
    z, consensus = sample(backbone, classifier, z, start, grid, task, config, step_noise, callback)
    with torch.no_grad():
        counterfactuals = backbone.decode(z).clamp(0.0, 1.0)
    return Counterfactuals(counterfactuals, z, consensus=consensus, **_facts(classifier, images, counterfactuals, targets))
