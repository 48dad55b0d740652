"""The step-cost benchmark compares like with like: its re-creation of the original's step structure
(graph over both halves, one kept-graph backward per loss) computes exactly ldce's step."""

from __future__ import annotations

import pytest
import step_cost
import torch

from ldce.config import LDCEConfig
from ldce.sampler import guided_step

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    return step_cost.setup("tiny", 2, CPU)


@pytest.mark.parametrize("index", [0, 190, 450])
def test_original_structure_gives_ldce_step(tiny, index):
    backbone, classifier, z, grid, task = tiny
    ours, _ = guided_step(backbone, classifier, z, index, grid, task, LDCEConfig())
    theirs = step_cost.reference_step(backbone, classifier, z, index, grid, task, LDCEConfig())
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_plain_row_has_parts_reference_and_cost_per_counterfactual(tiny):
    row = step_cost.measure(tiny, CPU, "fp32", "plain", repeats=1)
    parts = ("eps 2B", "decode B", "classifier fwd+bwd", "2 VJPs", "reference")
    assert all(row[name] > 0 for name in ("step", *parts)) and row["max |Δ| vs reference"] < 1e-5
    line = step_cost.report("tiny", row, paper_steps=191)
    assert f"({row['step'] * 191 / 2:.1f} s/cf)" in line and "step/Σparts" in line
