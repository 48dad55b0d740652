"""Panels and grids show original | counterfactual | |difference| | consensus as uint8 pictures."""

from __future__ import annotations

import numpy as np
import torch

from ldce.images import to_uint8
from ldce.results.pictures import grid, heat, panel


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
