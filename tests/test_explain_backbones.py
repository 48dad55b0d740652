"""Every backbone type runs the whole LDCE loop end to end through explain()."""

from __future__ import annotations

import pytest
import torch
from toy import ToyClassifier

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.dit import DiT
from ldce.backbones.stable_diffusion import StableDiffusion
from ldce.config import LDCEConfig
from ldce.explain import explain

NAMES = [f"class {i}" for i in range(10)]
BACKBONES = {
    "class_conditional_vq": lambda: ClassConditionalLDM.tiny(first_stage="vq"),
    "class_conditional_kl": lambda: ClassConditionalLDM.tiny(first_stage="kl"),
    "stable_diffusion": lambda: StableDiffusion.tiny(NAMES),
    "dit": lambda: DiT.tiny(num_classes=10),
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
