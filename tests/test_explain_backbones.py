"""Every backbone type runs the whole LDCE loop end to end through explain()."""

from __future__ import annotations

import pytest
import torch
from toy import ToyClassifier

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.testing.models import tiny_class_conditional_ldm, tiny_dit, tiny_stable_diffusion

NAMES = [f"class {i}" for i in range(10)]
BACKBONES = {
    "class_conditional_vq": lambda: tiny_class_conditional_ldm(first_stage="vq"),
    "class_conditional_kl": lambda: tiny_class_conditional_ldm(first_stage="kl"),
    "stable_diffusion": lambda: tiny_stable_diffusion(NAMES),
    "dit": lambda: tiny_dit(num_classes=10),
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("guidance", ["projected", "free"])
def test_backbone_runs_the_whole_loop(name, guidance):
    backbone = BACKBONES[name]()
    torch.manual_seed(0)
    classifier = ToyClassifier().eval().requires_grad_(False)
    size = backbone.image_size
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    steps = []
    config = LDCEConfig(strength=0.3, ddim_steps=10, guidance=guidance)
    result = explain(images, torch.tensor([1, 2]), backbone, classifier, config, callback=steps.append)
    assert len(steps) == 3
    assert result.images.shape == images.shape and torch.isfinite(result.images).all()
    assert torch.isfinite(result.latents).all() and not torch.equal(result.images, images)
    assert (result.consensus is None) == (guidance == "free")
