"""The step-cost benchmark compares like with like: the re-creation of the original's step structure
(graph over both halves, one kept-graph backward per loss) computes exactly ldce's step, and the
benchmark runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy import ToyClassifier

from ldce.method.config import LDCEConfig
from ldce.method.sampler import guided_step
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task
from ldce.testing.models import tiny_class_conditional_ldm
from ldce.testing.reference import reference_step

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    backbone, classifier = tiny_class_conditional_ldm(), ToyClassifier().eval().requires_grad_(False)
    images, targets = torch.rand(2, 3, 32, 32), torch.tensor([3, 4])
    with torch.no_grad():
        z = backbone.encode(images)
        cond, null = backbone.conditioning(targets)
    return backbone, classifier, z, ddim_grid(backbone.alphas_cumprod, 500), Task(images, targets, cond, null)


@pytest.mark.parametrize("index", [0, 190, 450])
def test_original_structure_gives_ldce_step(tiny, index):
    backbone, classifier, z, grid, task = tiny
    ours, _ = guided_step(backbone, classifier, z, index, grid, task, LDCEConfig())
    theirs = reference_step(backbone, classifier, z, index, grid, task, LDCEConfig())
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))


def test_the_benchmark_reports_parts_reference_and_cost_per_counterfactual():
    command = [sys.executable, str(BENCHMARKS / "step_cost.py"), "--models", "tiny", "--batch", "2", "--repeats", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=BENCHMARKS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step/Σparts" in result.stdout and "s/cf" in result.stdout
