"""Mixed precision changes only the networks' arithmetic: latents and guidance stay float32, and no
gradient is lost to float16's narrow range (the sampler rescales what it carries back)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_performance import BACKBONES, CONFIG, _run
from torch import nn
from toy import ToyClassifier

from ldce.method.guided import predicted_clean_latent
from ldce.method.terms import Task
from ldce.method.terms.classifier import classifier_gradient
from ldce.method.vjp import cut_vjp, scaled_vjp
from ldce.testing.models import tiny_stable_diffusion


def _cosine(a, b):
    """Per-sample cosine similarity, exact for tiny vectors (no epsilon)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


@pytest.mark.parametrize("guidance", ["free", "projected"])
def test_bf16_autocast_runs_only_the_networks_in_bf16(guidance):
    """Under bf16 autocast the latents and the guidance arithmetic stay float32; without gradients in
    play (guidance-free) the counterfactual is within bf16 round-off (2 % relative) of float32's.
    (With gradients, bf16 backward passes move the consensus bins: 15–19 % on these random models.)"""
    config = dataclasses.replace(CONFIG, guidance=guidance)
    plain = _run(BACKBONES["sd"](), config)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = _run(BACKBONES["sd"](), config)
    assert mixed.dtype == torch.float32 and mixed.isfinite().all()
    if guidance == "free":
        assert (mixed - plain).norm() / plain.norm() < 2e-2


def _latent_gradient(backbone, z, vector, dtype, cut=False):
    leaf = z.detach().requires_grad_(True)
    alpha, t = backbone.alphas_cumprod[500], torch.full((len(z),), 500)
    with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
        null = backbone.conditioning(torch.zeros(len(z), dtype=torch.long))[1]
        clean = predicted_clean_latent(leaf, backbone.eps(leaf, t, null).float(), alpha)
        clean_leaf = clean.detach().requires_grad_(True) if cut else clean
        image = backbone.decode(clean_leaf)
    if cut:
        return cut_vjp(image, clean_leaf, clean, leaf, vector[None], batched=False)[0]
    return scaled_vjp(image, leaf, vector[None])[0]


@pytest.mark.parametrize("cut", [False, True], ids=["one graph", "cut at the clean latent"])
@pytest.mark.parametrize("size", [1.0, 1e-7])
def test_fp16_carries_image_gradients_of_any_size_back_to_the_latent(size, cut):
    """Jᵀ·v through decoder and noise model in float16 has float32's direction and length, also
    for v far below float16's smallest normal number (6e-5) and subnormal (6e-8); also when the
    graph is cut at ẑ0 (``cut_vjp``, stacked_noise_vjp)."""
    torch.manual_seed(0)
    backbone = tiny_stable_diffusion([f"c{i}" for i in range(10)]).eval().requires_grad_(False)
    images = torch.rand(2, 3, backbone.image_size, backbone.image_size)
    with torch.no_grad():
        z = backbone.encode(images)
    vector = size * torch.randn_like(images)
    exact = _latent_gradient(backbone, z, vector, None, cut)
    half = _latent_gradient(backbone, z, vector, torch.float16, cut)
    assert (_cosine(half, exact) > 0.99).all()
    torch.testing.assert_close(half.flatten(1).norm(dim=1), exact.flatten(1).norm(dim=1), rtol=0.05, atol=0)


class Saturated(nn.Module):
    """``ToyClassifier``'s logits times ``temperature``: the larger, the surer of itself."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.net, self.temperature = ToyClassifier(), temperature

    def forward(self, images):
        return self.net(images) * self.temperature


def test_fp16_keeps_the_gradient_of_a_confident_classifier():
    """When p(target) is 1 − ~1e-11, ∂log p/∂logits (~1e-11) is below float16's range; the classifier
    gradient computed under fp16 autocast still points where float32's does."""
    torch.manual_seed(0)
    classifier = Saturated().eval().requires_grad_(False)
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        top = classifier(images).topk(2).values
    classifier.temperature = 25.0 / float(top[0, 0] - top[0, 1])
    task = Task(images, classifier(images).argmax(1), torch.empty(0), torch.empty(0))
    exact = classifier_gradient(classifier, images, task.targets).gradient
    probabilities = classifier(images).softmax(1)
    assert 1e-12 < probabilities.topk(2).values[0, 1] < 6e-8, "a non-target probability below float16's range"
    with torch.autocast("cpu", torch.float16):
        half = classifier_gradient(classifier, images, task.targets).gradient
    assert (_cosine(half, exact) > 0.99).all()
