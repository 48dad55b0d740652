"""Fast guidance (ldce.method.fast): each switch's defining property, on the toy backbone."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import ldce_in_process, records, tiny_config, uneven_shards
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.fast import GuidanceEvery, StopAfterFlip
from ldce.method.guided import GuidedNoise, GuidedNoiseModel, StepRecord, ldce_terms
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task

TARGETS = torch.tensor([1, 3, 5, 7])
STEPS = 10
"""Guided steps of BASE (20 DDIM steps at strength 0.5)."""
BASE = LDCEConfig(ddim_steps=20, strength=0.5)


class Counting(torch.nn.Module):
    """The toy classifier, counting its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.calls = toy_classifier(), 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(images)


@pytest.fixture(scope="module")
def backbone():
    return ToyBackbone()


def _explain(backbone, classifier, config: LDCEConfig):
    return explain(toy_images(4), TARGETS, backbone, classifier, config, seed=3)


def test_guidance_every_1_wrapper_is_bit_identical_to_the_guided_model(backbone):
    """GuidanceEvery with k = 1 passes every step to the guided model: the same ê, bit for bit."""
    classifier, grid = toy_classifier(), ddim_grid(backbone.alphas_cumprod, 20)
    cond, null = backbone.conditioning(TARGETS)
    task = Task(toy_images(4), TARGETS, cond, null)
    guided = GuidedNoiseModel(backbone, ldce_terms(BASE, classifier), 3.0, grid, task)
    wrapped = GuidanceEvery(guided, backbone, grid, task, every=1, start=10)
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    for index in (9, 8, 7):
        assert torch.equal(wrapped(z, index).eps, guided(z, index).eps)


def test_stop_after_flip_that_never_fires_is_bit_identical_to_ldce(backbone):
    """stop_after_flip with a streak longer than the run never stops: the same images and latents."""
    exact = _explain(backbone, toy_classifier(), BASE)
    never = _explain(
        backbone,
        toy_classifier(),
        LDCEConfig(ddim_steps=20, strength=0.5, stop_after_flip=0.0, stop_after_flip_steps=STEPS + 1),
    )
    assert torch.equal(exact.images, never.images) and torch.equal(exact.latents, never.latents)
    assert exact.guidance_stopped_at is None and never.guidance_stopped_at.tolist() == [-1] * 4


@pytest.mark.parametrize(("every", "guided"), [(2, 5), (3, 4)])
def test_guidance_every_k_calls_the_classifier_on_every_kth_step_only(backbone, every, guided):
    """k = 2 calls the classifier on 5 of 10 steps, k = 3 on 4 (steps 0, 3, 6, 9), plus the two final
    checks of explain; the trace still has a probability per step (the last measured one in between)."""
    classifier = Counting()
    result = _explain(backbone, classifier, LDCEConfig(ddim_steps=20, strength=0.5, guidance_every=every))
    assert classifier.calls == guided + 2
    trace = result.trace.target_probability
    assert trace.shape == (4, STEPS)
    assert torch.equal(trace[:, 1], trace[:, 0]), "a reused step records the last measured probability"
    assert not torch.equal(result.images, _explain(backbone, toy_classifier(), BASE).images)


class Scripted:
    """A noise model whose record gives each row (named by its target) a scripted probability per step."""

    def __init__(self, task: Task, script: dict[int, list[float]], calls: list[tuple[int, ...]]) -> None:
        self.task, self.script, self.calls = task, script, calls

    def __call__(self, z: torch.Tensor, index: int) -> GuidedNoise:
        rows = tuple(self.task.targets.tolist())
        self.calls.append(rows)
        step = 9 - index
        probability = torch.tensor([self.script[row][step] for row in rows])
        record = StepRecord(index, torch.tensor(index), z[:, :3], probability, None)
        return GuidedNoise(z, record, z)


def test_stop_after_flip_stops_after_exactly_m_consecutive_steps_and_then_never_guides_again():
    """m = 2, p = 0.5: a streak broken after one step does not count; the row stops after its second
    consecutive step ≥ p and is from then on only given to the classifier-free model."""
    script = {
        0: [0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # held at steps 2 and 3: stops at 4
        1: [0.1, 0.6, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],  # held at steps 1 and 2: stops at 3
        2: [0.4] * 10,  # never
    }
    guided_calls: list[tuple[int, ...]] = []
    free_calls: list[tuple[int, ...]] = []
    targets = torch.tensor([0, 1, 2])
    task = Task(torch.zeros(3, 3, 4, 4), targets, targets, targets)
    stop = StopAfterFlip(
        lambda t: Scripted(t, script, guided_calls), lambda t: Scripted(t, script, free_calls), task, 0.5, 2, 10
    )
    z = torch.zeros(3, 4, 4, 4)
    probabilities = [stop(z, index).record.target_probability for index in reversed(range(10))]
    assert stop.stopped_at.tolist() == [4, 3, -1]
    assert guided_calls == [(0, 1, 2)] * 3 + [(0, 2)] + [(2,)] * 6, "the whole batch until step 2, then the rest"
    assert free_calls == [(1,)] + [(0, 1)] * 6
    assert probabilities[5].tolist() == pytest.approx([0.9, 0.5, 0.4]), "stopped rows keep their last measured p"


def test_stop_after_flip_at_p_0_stops_after_m_steps_and_makes_no_classifier_call_after(backbone):
    """p = 0 holds at every step: the classifier runs on the first m steps only (plus explain's two checks)."""
    classifier = Counting()
    config = LDCEConfig(ddim_steps=20, strength=0.5, stop_after_flip=0.0, stop_after_flip_steps=3)
    result = _explain(backbone, classifier, config)
    assert result.guidance_stopped_at.tolist() == [3] * 4
    assert classifier.calls == 3 + 2


def test_the_record_carries_the_step_guidance_stopped_at(tmp_path, capsys):
    """records.jsonl has guidance_stopped_at with stop_after_flip (here 2: p = 0, m = 2), and null without."""
    config = tiny_config(
        tmp_path, uneven_shards(tmp_path, (2,)), method={"stop_after_flip": 0.0, "stop_after_flip_steps": 2}
    )
    status, stderr = ldce_in_process(capsys, "predict", "--config", str(config), "--output_dir", str(tmp_path / "o"))
    assert status == 0, stderr
    assert [r["guidance_stopped_at"] for r in records(tmp_path / "o")] == [2, 2]
