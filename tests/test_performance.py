"""Speed switches change no result beyond float round-off (float32, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tolerance import assert_close_to_scale
from toy import ToyClassifier

from ldce.backbones.speedups import Speedups, apply_speedups
from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.testing.models import tiny_class_conditional_ldm, tiny_stable_diffusion

CONFIG = LDCEConfig(strength=0.3, ddim_steps=20)
BACKBONES = {
    "cin_vq": lambda: tiny_class_conditional_ldm(first_stage="vq"),
    "cin_kl": lambda: tiny_class_conditional_ldm(first_stage="kl"),
    "sd": lambda: tiny_stable_diffusion([f"c{i}" for i in range(10)]),
}
SWITCHES = {
    "channels_last": Speedups(channels_last=True),
    "classic_attention": Speedups(attention="classic"),
    "gradient_checkpointing": Speedups(gradient_checkpointing=True),
}


def _run(backbone, config=CONFIG):
    torch.manual_seed(0)
    classifier = ToyClassifier().eval().requires_grad_(False)
    images = torch.rand(2, 3, backbone.image_size, backbone.image_size, generator=torch.Generator().manual_seed(1))
    return explain(images, torch.tensor([3, 4]), backbone, classifier, config).latents


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_switch_keeps_the_counterfactual(name, switch):
    plain = _run(BACKBONES[name]())
    switched = _run(apply_speedups(BACKBONES[name](), SWITCHES[switch]))
    assert_close_to_scale(switched, plain, rel=1e-5, rtol=1e-4)


def test_compiled_models_keep_the_counterfactual():
    """torch.compile (inductor, on CPU) of noise model and decoder: the same counterfactual within round-off.

    One backbone only: compiling takes about two minutes on two cores with a cold cache.
    """
    plain = _run(BACKBONES["cin_vq"]())
    backbone = apply_speedups(BACKBONES["cin_vq"](), Speedups(compile=True))
    networks = backbone.networks()
    assert networks.noise_model._compiled_call_impl is not None and networks.decoder._compiled_call_impl is not None
    assert_close_to_scale(_run(backbone), plain, rel=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_one_batched_backward_gives_both_gradients(name):
    backbone = BACKBONES[name]()
    assert_close_to_scale(
        _run(backbone, dataclasses.replace(CONFIG, batched_vjp=True)), _run(backbone), rel=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_one_backward_through_the_noise_model_over_stacked_copies_gives_both_gradients(name):
    """stacked_noise_vjp: the same counterfactual within round-off (through the decoder per term, then one
    pass through the noise model over K copies of z). The noise model then runs on 2B latents, and its
    kernels are not batch-invariant: the tolerance of the other switches that change the float order."""
    backbone = BACKBONES[name]()
    assert_close_to_scale(
        _run(backbone, dataclasses.replace(CONFIG, stacked_noise_vjp=True)), _run(backbone), rel=1e-5, rtol=1e-4
    )


def test_switches_are_in_effect():
    backbone = apply_speedups(
        BACKBONES["sd"](), Speedups(channels_last=True, attention="classic", gradient_checkpointing=True)
    )
    conv = backbone.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert {type(p).__name__ for p in backbone.unet.attn_processors.values()} == {"AttnProcessor"}
    assert backbone.unet.is_gradient_checkpointing and backbone.vae.is_gradient_checkpointing


def test_cpp_wrapper_reaches_inductor_for_both_networks_and_needs_compile(monkeypatch):
    """speedups.cpp_wrapper becomes torch.compile's inductor option for the noise model and the decoder;
    without speedups.compile it is refused (it would do nothing)."""
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: seen.append(kwargs))
    apply_speedups(BACKBONES["cin_vq"](), Speedups(compile=True, cpp_wrapper=True))
    assert seen == [{"dynamic": False, "options": {"cpp_wrapper": True}}] * 2
    with pytest.raises(ValueError, match="cpp_wrapper applies to compiled networks only"):
        Speedups(cpp_wrapper=True)
