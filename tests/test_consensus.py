"""Properties of consensus guidance and per-sample renormalisation (ldce.consensus)."""

from __future__ import annotations

import math

import pytest
import torch

from ldce.method.consensus import cone_angle, consensus_guidance, match_norm, turn_towards

THETA = 45.0


def _pixel_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees per latent pixel between (B, C, H, W) fields: (B, H, W)."""
    return torch.rad2deg(cone_angle(a.movedim(1, -1), b.movedim(1, -1)))


@pytest.fixture
def fields() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    implicit = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    score = implicit + 1.2 * torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    return implicit, score


def test_scores_within_max_angle_pass_unchanged(fields):
    """A classifier gradient within θmax of the implicit classifier passes unchanged, in every mode."""
    implicit, _ = fields
    score = 2.0 * implicit + 0.01 * torch.randn_like(implicit)
    for mode in ("zero_binning", "binning", "default"):
        out, mask = consensus_guidance(implicit, score, THETA, mode)
        torch.testing.assert_close(out, score, rtol=0, atol=0)
        assert mask.all()


def test_zero_binning_zeroes_exactly_the_pixels_beyond_max_angle(fields):
    implicit, score = fields
    out, mask = consensus_guidance(implicit, score, THETA, "zero_binning")
    inside = _pixel_angles(implicit, score) <= THETA
    assert 0 < inside.sum() < inside.numel(), "fixture must have pixels on both sides"
    assert torch.equal(mask, inside)
    assert torch.equal(out, torch.where(inside[:, None], score, torch.zeros_like(score)))


def test_binning_turns_outside_pixels_by_exactly_max_angle_towards_implicit(fields):
    implicit, score = fields
    out, mask = consensus_guidance(implicit, score, THETA, "binning")
    outside = ~mask
    turned = _pixel_angles(score, out)[outside]
    torch.testing.assert_close(turned, torch.full_like(turned, THETA))
    closer = _pixel_angles(implicit, out)[outside] < _pixel_angles(implicit, score)[outside]
    assert closer.all(), "the turn must go towards the implicit classifier"
    assert torch.equal(out.movedim(1, -1)[mask], score.movedim(1, -1)[mask])


def test_binning_stays_in_the_plane_of_score_and_implicit():
    implicit = torch.tensor([[[[0.0]], [[1.0]], [[0.0]]]], dtype=torch.float64)
    score = torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]], dtype=torch.float64)
    out, mask = consensus_guidance(implicit, score, 30.0, "binning")
    expected = torch.tensor([1.0, math.tan(math.radians(30.0)), 0.0], dtype=torch.float64)
    torch.testing.assert_close(out.flatten(), expected)
    assert not mask.any()


def test_default_acts_on_the_whole_flattened_vector(fields):
    implicit, score = fields
    out, mask = consensus_guidance(implicit, score, THETA, "default")
    flat_angle = torch.rad2deg(cone_angle(implicit.flatten(1), score.flatten(1)))
    expected = turn_towards(score.flatten(1), implicit.flatten(1), THETA).reshape(score.shape)
    expected = torch.where((flat_angle <= THETA)[:, None, None, None], score, expected)
    torch.testing.assert_close(out, expected)
    assert torch.equal(mask, (flat_angle <= THETA)[:, None, None].expand_as(mask))
    turned = torch.rad2deg(cone_angle(score.flatten(1), out.flatten(1)))[flat_angle > THETA]
    torch.testing.assert_close(turned, torch.full_like(turned, THETA))


def test_chunks_decide_per_block_of_latent_pixels(fields):
    implicit, score = fields
    out, mask = consensus_guidance(implicit, score, THETA, "zero_binning", chunk_size=2)
    blocks = lambda v: v.reshape(3, 4, 3, 2, 3, 2).permute(0, 2, 4, 1, 3, 5).reshape(3, 3, 3, 16)  # noqa: E731
    inside = torch.rad2deg(cone_angle(blocks(implicit), blocks(score))) <= THETA
    assert torch.equal(mask, inside.repeat_interleave(2, 1).repeat_interleave(2, 2))
    assert torch.equal(out, torch.where(mask[:, None], score, torch.zeros_like(score)))


def test_inputs_are_not_modified(fields):
    implicit, score = fields
    before = implicit.clone(), score.clone()
    for mode in ("zero_binning", "binning", "default"):
        consensus_guidance(implicit, score, THETA, mode)
        match_norm(score, implicit)
    assert torch.equal(implicit, before[0]) and torch.equal(score, before[1])


@pytest.mark.parametrize("mode", ["zero_binning", "binning", "default"])
def test_zero_parallel_and_antiparallel_vectors_give_finite_results(mode):
    v = torch.randn(1, 3, 2, 2)
    cases = [(v, torch.zeros_like(v)), (torch.zeros_like(v), v), (v, 3 * v), (v, -v), (torch.zeros_like(v),) * 2]
    for implicit, score in cases:
        out, _ = consensus_guidance(implicit, score, THETA, mode)
        assert torch.isfinite(out).all()
        assert torch.isfinite(match_norm(out, implicit)).all()


def test_renormalised_norms_equal_the_implicit_norm_per_sample(fields):
    implicit, score = fields
    out = 2.3 * match_norm(score, implicit)
    torch.testing.assert_close(out.flatten(1).norm(dim=1), 2.3 * implicit.flatten(1).norm(dim=1))
    cosine = torch.nn.functional.cosine_similarity(out.flatten(1), score.flatten(1))
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


def test_a_zero_score_stays_zero_after_renormalisation(fields):
    implicit, _ = fields
    assert torch.equal(match_norm(torch.zeros_like(implicit), implicit), torch.zeros_like(implicit))


def test_unknown_mode_and_indivisible_chunks_are_rejected(fields):
    implicit, score = fields
    with pytest.raises(ValueError, match="unknown cone projection"):
        consensus_guidance(implicit, score, THETA, "cone")
    with pytest.raises(ValueError, match="chunk_size 4"):
        consensus_guidance(implicit, score, THETA, "zero_binning", chunk_size=4)
