"""Panels and grids show original | counterfactual | |difference| | consensus as uint8 pictures."""

from __future__ import annotations

import numpy as np
import torch

from ldce.images import to_uint8
from ldce.results.pictures import caption, grid, heat, panel
from ldce.results.record import Record, RecordFiles, thinned


def test_panel_tiles_are_the_images_their_difference_and_the_consensus_map():
    original, counterfactual = torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)
    counterfactual[:, 0, 0] = 1.0
    consensus = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    row = panel(original, counterfactual, consensus)
    assert row.dtype == np.uint8 and row.shape == (4, 16, 3)
    assert np.array_equal(row[:, :4], to_uint8(original)) and np.array_equal(row[:, 4:8], to_uint8(counterfactual))
    diff = row[:, 8:12]
    assert np.array_equal(diff[0, 0], to_uint8(heat(torch.ones(1, 1)))[0, 0]) and np.array_equal(
        diff[1, 1], to_uint8(heat(torch.zeros(1, 1)))[0, 0]
    )
    assert np.array_equal(row[:2, 12:14], np.broadcast_to(to_uint8(heat(torch.ones(1, 1)))[0, 0], (2, 2, 3)))
    assert panel(original, counterfactual).shape == (4, 12, 3)


def test_float_images_become_uint8_not_black():
    assert to_uint8(torch.full((3, 2, 2), 0.5)).max() == 128


def test_grid_stacks_scaled_rows_under_captions():
    rows = [np.full((4, 16, 3), 255, np.uint8), np.zeros((4, 16, 3), np.uint8)]
    picture = grid(rows, ["a -> b", "c -> d"], scale=2, caption_height=10)
    assert picture.size == (32, 10 + 2 * (10 + 8))
    pixels = np.asarray(picture)
    assert (pixels[10 + 10 + 8 + 10 :, :] == 0).all(), "the second row, scaled, at the bottom"


def test_a_region_adds_a_fifth_tile_its_colour_over_the_faint_original():
    original, region = torch.full((3, 4, 4), 0.5), torch.zeros(4, 4)
    region[:2] = 1.0
    row = panel(original, original, torch.zeros(2, 2), region)
    assert row.shape == (4, 20, 3)
    inside, outside = (to_uint8(0.7 * heat(torch.full((1, 1), v)) + 0.15)[0, 0] for v in (1.0, 0.0))
    assert np.array_equal(row[0, 16], inside) and np.array_equal(row[3, 16], outside)


def _record(**facts) -> Record:
    files = RecordFiles(original="o.png", counterfactual="c.png")
    base = {"source": 4, "target": 2, "source_name": "Coat", "target_name": "Pullover", "l1": 1.0, "l2": 1.0}
    return Record(key="k", status="done", written_at=0.0, files=files, **(base | facts))


def test_captions_say_whether_the_classifier_now_says_the_target():
    assert caption(_record(flipped=True, target_confidence=0.86)) == "Coat -> Pullover: p(target) 0.86, flipped"
    missed = caption(_record(flipped=False, target_confidence=0.2, prediction=6, region_share=0.25))
    assert missed == "Coat -> Pullover: p(target) 0.20, NOT flipped (says 6), region 25%"
    already = _record(flipped=True, already_target=True, target_confidence=0.9)
    assert caption(already).endswith("already the target")


def test_a_confidence_curve_is_thinned_to_fifty_points_keeping_both_ends():
    values = [float(i) for i in range(200)]
    kept = thinned(values)
    assert len(kept) == 50 and kept[0] == 0.0 and kept[-1] == 199.0 and kept == sorted(kept)
    assert thinned(values[:30]) == values[:30]
