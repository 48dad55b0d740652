"""The exact mode's own speed-ups: both noise halves in one call (ldce.method.halves) and contiguous
activations after diffusers' attention (ldce.backbones.speedups), each the same step up to round-off."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from tolerance import assert_close_to_scale
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.backbones.speedups import Speedups, apply_speedups
from ldce.method.config import LDCEConfig
from ldce.method.halves import noise_halves, stacked
from ldce.method.sampler import guided_step
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task
from ldce.testing.models import tiny_class_conditional_ldm

TARGETS = torch.tensor([1, 3, 5, 7])


def _task(backbone, images):
    cond, null = backbone.conditioning(TARGETS)
    return Task(images, TARGETS, cond, null)


def test_one_2b_call_gives_both_halves_and_the_gradient_of_the_unconditional_half_only():
    """joint and separate: the same e_c and e_u, and ∂(v·e_u)/∂z through the 2B graph equals the B graph's."""
    backbone = ToyBackbone()
    task, t = _task(backbone, toy_images(4)), torch.full((4,), 400)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    v = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    results = []
    for joint in (False, True):
        leaf = z.clone().requires_grad_(True)
        e_c, e_u = noise_halves(backbone, leaf, t, task, graph=True, joint=joint)
        assert not e_c.requires_grad
        results.append((e_c, e_u.detach(), torch.autograd.grad(e_u, leaf, v)[0]))
    for separate, joint in zip(*results, strict=True):
        assert_close_to_scale(joint, separate, rel=1e-6)


def test_joint_and_separate_halves_give_the_same_guided_step():
    """A whole guided step (consensus, norms, both VJPs) with halves joint vs separate: equal up to round-off."""
    backbone, classifier = ToyBackbone(), toy_classifier()
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone, toy_images(4))
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    steps = [
        guided_step(backbone, classifier, z, 9, grid, task, LDCEConfig(ddim_steps=20, halves=halves))[0]
        for halves in ("separate", "joint")
    ]
    assert_close_to_scale(steps[1], steps[0], rel=1e-5)


def test_contiguous_attention_keeps_the_decoder_after_its_mid_block_attention_contiguous():
    """Without the switch the decoder's up blocks see channels-last strides; with it, contiguous inputs;
    the decoded image is the same up to round-off."""
    plain = tiny_class_conditional_ldm(first_stage="kl").eval()
    latents = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    layouts, images = [], []
    for contiguous in (False, True):
        backbone = apply_speedups(copy.deepcopy(plain), Speedups(contiguous_attention=contiguous))
        seen: list[bool] = []
        up = backbone.networks().decoder.up_blocks[0]
        handle = up.register_forward_pre_hook(lambda module, args, seen=seen: seen.append(args[0].is_contiguous()))
        images.append(backbone.decode(latents))
        handle.remove()
        layouts.append(seen)
    assert layouts == [[False], [True]]
    assert_close_to_scale(images[1], images[0], rel=1e-6)


class BatchSizes(ToyBackbone):
    """A toy backbone that records the batch size of every noise-model call and whether it was in a graph."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []

    def eps(self, latents, timesteps, cond):
        self.calls.append((len(latents), torch.is_grad_enabled()))
        return super().eps(latents, timesteps, cond)


@pytest.mark.parametrize(("halves", "calls"), [("separate", [(4, False), (8, True)]), ("joint", [(12, True)])])
def test_stacked_noise_vjp_computes_e_u_on_two_copies_and_keeps_the_step(halves, calls):
    """With two gradient terms (classifier, distance), stacked_noise_vjp runs e_u on 2B latents (joint: with
    e_c, 3B) and gives the per-term step up to round-off."""
    backbone, classifier = BatchSizes(), toy_classifier()
    grid, task = ddim_grid(backbone.alphas_cumprod, 20), _task(backbone, toy_images(4))
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    config = LDCEConfig(ddim_steps=20, halves=halves)
    per_term = guided_step(backbone, classifier, z, 9, grid, task, config)[0]
    backbone.calls.clear()
    config = dataclasses.replace(config, stacked_noise_vjp=True)
    over_copies = guided_step(backbone, classifier, z, 9, grid, task, config)[0]
    assert backbone.calls == calls
    assert_close_to_scale(over_copies, per_term, rel=1e-5)


def test_one_copy_keeps_the_callers_tensors_so_the_default_step_runs_the_same_kernels():
    """Without stacking, the latents and conditioning reach the noise model as given (no copy that could
    change their layout, and with it the kernels and the last bits of the default step)."""
    z, null = torch.randn(4, 4, 4, 4), torch.randn(1, 8).expand(4, 8)
    assert stacked(z, 1) is z and stacked(null, 1) is null
    assert torch.equal(stacked(null, 3), torch.cat([null, null, null]))
