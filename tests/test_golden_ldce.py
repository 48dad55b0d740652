"""Parity with the original implementation: guidance units and whole LDCE runs (../shared/golden)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tolerance import assert_close_to_scale, threads

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.method.consensus import consensus_guidance, match_norm
from ldce.method.explain import explain
from ldce.method.sampler import guided_step
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task
from ldce.testing.golden import config_of, tiny_classifier

THREADS = [1, 2]
"""Float-sensitive: every comparison runs with one and with two intra-op threads."""


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Within 1e-5 of the tensor's scale plus 1e-4 relative (golden/README.md: ~1e-5–1e-4 relative)."""
    assert_close_to_scale(actual, expected, rel=1e-5, rtol=1e-4)


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thread")
def thread_count(request):
    with threads(request.param):
        yield request.param


@pytest.fixture(scope="module")
def units(golden_dir):
    return load_file(str(golden_dir / "units.safetensors"))


@pytest.fixture(scope="module")
def backbone(golden_dir):
    return ClassConditionalLDM.from_compvis(
        golden_dir / "tiny_cin_ldm.safetensors", golden_dir / "tiny_cin_ldm.yaml"
    ).eval()


@pytest.fixture(scope="module")
def classifier(golden_dir):
    return tiny_classifier(golden_dir)


def _run(golden_dir, name: str):
    config = config_of(json.loads((golden_dir / f"{name}.json").read_text()))
    return config, load_file(str(golden_dir / f"{name}.safetensors"))


def test_zero_binning_matches_the_reference_cone_and_mask(units):
    out, mask = consensus_guidance(units["cone_in_a"], units["cone_in_b"], 45.0, "zero_binning")
    assert torch.equal(out, units["cone_zero_out"])
    assert torch.equal(mask.to(torch.uint8), units["cone_zero_keep_mask"])


def test_binning_matches_the_reference_cone_and_mask(units):
    out, mask = consensus_guidance(units["cone_in_a"], units["cone_in_b"], 45.0, "binning")
    _close(out, units["cone_binning_out"])
    assert torch.equal(mask.to(torch.uint8), units["cone_binning_keep_mask"])


def test_default_cone_matches_the_reference_up_to_its_unit_length(units):
    """The reference returns the per-sample result at unit length; ldce keeps |s_c|, same direction."""
    score = units["cone_in_b"]
    out, _ = consensus_guidance(units["cone_in_a"], score, 45.0, "default")
    _close(out.flatten(1) / score.flatten(1).norm(dim=1, keepdim=True), units["cone_default_out"])


def test_renormalisation_matches_the_reference(units):
    _close(match_norm(units["cone_in_b"], units["cone_in_a"]), units["renorm_out"])


@pytest.mark.parametrize("name", ["ldce_run", "ldce_run_guidance_free", "ldce_run_cone_default_PATCHED"])
def test_each_step_matches_the_reference_given_its_input(golden_dir, backbone, classifier, name, thread_count):
    """Fed the reference's x_t of every step, one guided step returns its x_{t−1} and guided noise."""
    config, run = _run(golden_dir, name)
    grid = ddim_grid(backbone.alphas_cumprod, config.ddim_steps, config.ddim_eta)
    cond, null = backbone.conditioning(run["target_y"])
    task = Task(run["image01"], run["target_y"], cond.detach(), null.detach())
    for i, index in enumerate(run["steps.step_index"].tolist()):
        z_prev, record = guided_step(backbone, classifier, run["steps.x_in"][i], index, grid, task, config)
        _close(z_prev, run["steps.x_prev"][i])
        _close(record.clean_image, ((run["steps.pred_x0_img"][i] + 1) / 2).clamp(0, 1))
        if config.guidance == "projected" and config.cone_projection_type == "zero_binning":
            assert torch.equal(record.consensus_mask.to(torch.uint8), run["steps.cone_keep_mask"][i])


@pytest.mark.parametrize("name", ["ldce_run", "ldce_run_guidance_free", "ldce_run_cone_default_PATCHED"])
def test_whole_run_matches_the_reference(golden_dir, backbone, classifier, name, thread_count):
    """explain() from the reference's image, target and noise reproduces its latents and images."""
    config, run = _run(golden_dir, name)
    result = explain(run["image01"], run["target_y"], backbone, classifier, config, noise=run["noise"])
    _close(result.latents, run["samples_latent"])
    _close(result.images, run["counterfactual_01"])
    _close(classifier(result.images), run["out_logits"])
