"""Pictures: grid rows say the classifier's prediction before → after and mark the inputs that did not
flip; tiles are enlarged and colour-mapped on fixed scales; step videos have one labelled frame per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import video_size
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ldce.callbacks.writer import grid_title
from ldce.images import to_uint8
from ldce.report.page import OUTCOME_LABELS
from ldce.results.captions import ALREADY_TARGET, FLIPPED, NOT_FLIPPED, Outcome, short_key, wrapped
from ldce.results.pictures import COUNTERFACTUAL_COLUMNS, GridRow, coloured, counterfactual_row, enlargement, grid
from ldce.results.record import Record, RecordFiles, thinned
from ldce.results.step_video import Steps, frames, label, write_video


def _record(**facts) -> Record:
    files = RecordFiles(original="o.png", counterfactual="c.png")
    base = {
        "source": 3,
        "target": 4,
        "source_name": "Dress",
        "target_name": "Coat",
        "source_prediction": 3,
        "source_prediction_name": "Dress",
        "source_confidence": 0.91,
        "l1": 1.0,
        "l2": 1.0,
    }
    return Record(key="k", status="done", written_at=0.0, files=files, **(base | facts))


def test_a_caption_names_the_key_the_pair_the_prediction_before_and_after_and_p_target():
    record = _record(flipped=False, prediction=6, prediction_name="Shirt", confidence=0.55, target_confidence=0.24)
    assert Outcome.of_record(record).lines() == [
        "k · Dress → Coat: NOT flipped",
        "classifier: Dress (p 0.91) → Shirt (p 0.55)",
        "p(target) 0.24",
    ]


def test_the_status_says_flipped_not_flipped_or_already_the_target():
    facts = {"prediction": 4, "confidence": 0.9, "target_confidence": 0.9}
    assert Outcome.of_record(_record(flipped=True, **facts)).status == FLIPPED
    assert Outcome.of_record(_record(flipped=False, **facts)).status == NOT_FLIPPED
    assert Outcome.of_record(_record(flipped=True, already_target=True, **facts)).status == ALREADY_TARGET


def test_a_record_without_class_names_shows_indices_and_a_region_share():
    names = {"source_name": None, "target_name": None, "source_prediction_name": None}
    record = _record(**names, flipped=True, prediction=4, confidence=0.8, target_confidence=0.8, region_share=0.25)
    assert Outcome.of_record(record).lines() == [
        "k · 3 → 4: flipped",
        "classifier: 3 (p 0.91) → 4 (p 0.80)",
        "p(target) 0.80, region 25%",
    ]


def test_a_long_key_is_shortened_to_its_end():
    key = "holiday/2024/august/IMG_20240815_123456_HDR"
    assert short_key(key) == "…" + key[-23:] and len(short_key(key)) == 24 and short_key("s003") == "s003"


def test_the_grid_says_the_statuses_in_the_words_of_the_report():
    assert [s.lower() for s in (FLIPPED, NOT_FLIPPED, ALREADY_TARGET)] == [
        OUTCOME_LABELS[name] for name in ("flipped", "not_flipped", "already_target")
    ]


def test_a_grid_of_the_first_inputs_only_says_how_many_of_how_many_and_where_the_rest_are():
    assert grid_title(16, 64) == ("the first 16 of 64 done inputs, by key (writer.grid_rows); every input: report.html")
    assert grid_title(5, 5) is None and grid_title(0, 0) is None
    rows = [_row(FLIPPED)]
    titled = grid(rows, COUNTERFACTUAL_COLUMNS, title=grid_title(16, 64))
    assert (
        titled.height > grid(rows, COUNTERFACTUAL_COLUMNS).height
        and titled.width == grid(rows, COUNTERFACTUAL_COLUMNS).width
    )


def test_wrapping_keeps_every_line_within_the_width_even_for_one_long_word():
    lines = wrapped(["x" * 50 + " → " + "long class name " * 8], 20)
    assert all(len(line) <= 20 for line in lines) and "".join(lines).count("x") == 50


def _row(status: str, side: int = 32, names: str = "Coat") -> GridRow:
    outcome = Outcome(names, names, names, 0.9, names, 0.2, 0.2, status == FLIPPED, status == ALREADY_TARGET)
    image = torch.linspace(0, 1, side * side).reshape(1, side, side).expand(3, -1, -1)  # grey: no red in the tiles
    return counterfactual_row(image, image.flip(-1), outcome, torch.rand(side // 4, side // 4), None)


def test_tiles_are_the_images_their_fixed_scale_difference_and_the_consensus_over_the_image():
    original, counterfactual = torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)
    counterfactual[:, 0, 0] = 1.0
    row = counterfactual_row(
        original, counterfactual, Outcome("a", "b", "a", 1, "b", 1, 1, True), torch.ones(1, 1), None
    )
    assert len(row.tiles) == 4 and all(t.dtype == np.uint8 and t.shape == (4, 4, 3) for t in row.tiles)
    assert np.array_equal(row.tiles[1], to_uint8(counterfactual))
    full, none = (to_uint8(coloured(torch.full((1, 1), v), "magma"))[0, 0] for v in (1.0, 0.0))
    assert np.array_equal(row.tiles[2][0, 0], full) and np.array_equal(row.tiles[2][1, 1], none)


def test_a_grid_enlarges_28_and_32_pixel_images_to_at_least_128_pixel_tiles():
    assert enlargement(28) * 28 >= 128 and enlargement(32) * 32 == 128 and enlargement(256) == 1
    rows = [_row(FLIPPED), _row(NOT_FLIPPED), _row(ALREADY_TARGET)]
    picture = grid(rows, COUNTERFACTUAL_COLUMNS)
    assert 4 * 128 < picture.width < 5 * 128 and picture.height > 3 * 128


def test_a_not_flipped_row_is_framed_in_red_and_a_flipped_one_is_not():
    def red_pixels(status: str) -> int:
        pixels = np.asarray(grid([_row(status)], COUNTERFACTUAL_COLUMNS)).astype(int)
        return int(((pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum())

    assert red_pixels(NOT_FLIPPED) > 500 > red_pixels(FLIPPED)


def test_no_caption_text_leaves_the_picture_at_any_class_name_length(monkeypatch):
    """Every text the grid draws lies inside the figure, for a 200-character class name and a long title."""
    extents = []
    draw = FigureCanvasAgg.draw

    def measuring(canvas):
        draw(canvas)
        renderer = canvas.get_renderer()
        extents.extend(t.get_window_extent(renderer) for t in canvas.figure.texts)
        extents.append(canvas.figure.bbox)

    monkeypatch.setattr(FigureCanvasAgg, "draw", measuring)
    rows = [_row(NOT_FLIPPED, names="n" * 120 + " " + "very long class name " * 4)]
    grid(rows, COUNTERFACTUAL_COLUMNS, title="a long title line " * 12)
    figure, texts = extents[-1], extents[:-1]
    assert len(texts) >= 9 and all(figure.x0 <= t.x0 and t.x1 <= figure.x1 + 1 for t in texts)
    assert all(figure.y0 <= t.y0 and t.y1 <= figure.y1 + 1 for t in texts)


def test_a_step_video_has_one_enlarged_labelled_frame_per_step():
    steps = Steps(
        torch.rand(4, 3, 32, 32),
        torch.rand(4, 8, 8) > 0.5,
        torch.tensor([0.1, 0.4, 0.7, 0.9]),
        torch.tensor([481, 321, 161, 1]),
        "4: Coat",
    )
    video = frames(steps)
    assert video.shape[0] == 4 and video.dtype == np.uint8 and video.shape[2] >= 2 * 160
    assert video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0, "even sides for video codecs"
    assert label(steps, 2) == ["step 3/4 · t = 161", "p(4: Coat) = 0.70"]
    assert not np.array_equal(video[0], video[1]), "each frame shows its own step"


def test_a_confidence_curve_is_thinned_to_fifty_points_keeping_both_ends():
    values = [float(i) for i in range(200)]
    kept = thinned(values)
    assert len(kept) == 50 and kept[0] == 0.0 and kept[-1] == 199.0 and kept == sorted(kept)
    assert thinned(values[:30]) == values[:30]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_step_video_file_holds_every_frame_at_its_size(tmp_path, suffix):
    if suffix == ".mp4":
        pytest.importorskip("av", reason="MP4 step videos need PyAV (pip install 'ldce[video]')")
    video = np.zeros((6, 64, 96, 3), np.uint8)
    video[:, :, :48] = np.arange(6, dtype=np.uint8)[:, None, None, None] * 40
    write_video(video, tmp_path / f"steps{suffix}")
    assert video_size(tmp_path / f"steps{suffix}") == (6, 96)
