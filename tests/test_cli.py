"""``ldce predict`` end to end in subprocesses: files, records, summary, resume, bad inputs, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import (
    counts,
    counts_of,
    good_sample,
    ldce_here,
    ldce_in_process,
    outputs_of,
    png,
    predict_args,
    records,
    summary,
    tiny_config,
    uneven_shards,
    video_size,
    write_shard,
)
from PIL import Image

from ldce.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_predict_writes_images_records_summary_and_config(tmp_path):
    config = tiny_config(tmp_path, uneven_shards(tmp_path / "data", (3, 2)), class_names=[f"c{i}" for i in range(10)])
    out = tmp_path / "out"
    ldce_here("predict", "--config", str(config), "--output_dir", str(out), "--writer.save_steps", "true")
    done = records(out)
    assert sorted(r["key"] for r in done) == [f"s{i:03d}" for i in range(5)]
    for record in done:
        assert record["status"] == "done" and record["target"] == (record["source"] + 1) % 10
        assert record["target_name"] == f"c{record['target']}"
        assert (out / record["files"]["original"]).is_file() and (out / record["files"]["counterfactual"]).is_file()
        assert 0 <= record["target_confidence"] <= 1 and record["l1"] > 0
    result = summary(out)
    assert counts_of(out) == counts(5, 0, 0)
    open_inputs = [r for r in done if not r["already_target"]]  # the flip rate leaves out inputs already at the target
    expected_flip = sum(r["flipped"] for r in open_inputs) / len(open_inputs)
    assert result["metrics"]["flip_rate"] == pytest.approx(expected_flip)
    assert result["counts"]["already_target"] == 5 - len(open_inputs)
    assert result["metrics"]["l1"] == pytest.approx(sum(r["l1"] for r in done) / 5, rel=1e-6)
    assert (out / "config.yaml").is_file() and (out / "grid.png").is_file()
    assert all((out / r["files"]["consensus"]).is_file() for r in done)
    frames, width = video_size(out / done[0]["files"]["steps"])  # MP4 with PyAV installed, else GIF
    assert frames == 5, "one frame per guided step (strength 0.5 of 10 steps)"
    assert width >= 2 * 160, "x̂0 and its consensus mask, each enlarged to at least 160 pixels"


def test_a_rerun_into_the_same_folder_skips_what_is_done(tmp_path):
    config = tiny_config(tmp_path, uneven_shards(tmp_path / "data", (3,)))
    out = tmp_path / "out"
    ldce_here("predict", "--config", str(config), "--output_dir", str(out))
    first = outputs_of(out)
    ldce_here("predict", "--config", str(config), "--output_dir", str(out))
    assert counts_of(out) == counts(0, 3, 0)
    assert outputs_of(out) == first
    ldce_here("predict", "--config", str(config), "--output_dir", str(out), "--writer.overwrite", "true")
    assert counts_of(out) == counts(3, 0, 0)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_predicts_every_input(tmp_path, precision):
    config = tiny_config(tmp_path, uneven_shards(tmp_path / "data", (3,)))
    out = tmp_path / "out"
    ldce_here("predict", "--config", str(config), "--output_dir", str(out), "--trainer.precision", precision)
    assert counts_of(out) == counts(3, 0, 0)
    assert all(Image.open(out / r["files"]["counterfactual"]).size == (32, 32) for r in records(out))


def test_bad_inputs_are_counted_named_and_skipped(tmp_path):
    samples = [
        good_sample(1),
        {"__key__": "truncated", "jpg": _jpeg()[:200], "cls": b"0", "target.cls": b"1"},
        {"__key__": "gray", "png": png(2, "L"), "cls": b"2", "target.cls": b"3"},
        {"__key__": "rgba", "png": png(3, "RGBA"), "cls": b"3", "target.cls": b"4"},
        {"__key__": "nolabel", "png": png(4), "target.cls": b"1"},
        {"__key__": "notarget", "png": png(6), "cls": b"2"},
        {"__key__": "badtarget", "png": png(5), "cls": b"5", "target.cls": b"9999"},
    ]
    (tmp_path / "data").mkdir()
    write_shard(tmp_path / "data" / "bad.tar", samples)
    out = tmp_path / "out"
    ldce_here(
        "predict", "--config", str(tiny_config(tmp_path, str(tmp_path / "data" / "bad.tar"))), "--output_dir", str(out)
    )
    result = summary(out)
    assert counts_of(out) == counts(4, 0, 3)
    reasons = {f["key"]: f["reason"] for f in result["failed"]}
    assert set(reasons) == {"truncated", "notarget", "badtarget"}
    assert "no target" in reasons["notarget"] and "9999" in reasons["badtarget"]
    done = outputs_of(out)
    assert sorted(done) == ["gray", "nolabel", "rgba", "s001"]
    assert done["nolabel"][1]["source_predicted"] and not done["gray"][1]["source_predicted"]


def test_on_error_fail_stops_at_the_first_bad_input(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    write_shard(tmp_path / "data" / "bad.tar", [{"__key__": "nolabel", "png": png(4)}])
    config = tiny_config(tmp_path, str(tmp_path / "data" / "bad.tar"), on_error="fail")
    with pytest.raises(RuntimeError, match="unusable inputs .on_error=fail.: nolabel"):
        ldce_in_process(capsys, *predict_args(config, tmp_path / "out"))


def _jpeg() -> bytes:
    from io import BytesIO

    import numpy as np
    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("--model.method.strength=1.5", "strength"),
        ("--model.method.classifier_lambda=-1", "classifier_lambda"),
        ("--model.method.deg_cone_projection=0", "deg_cone_projection"),
        ("--model.method.deg_cone_projection=200", "deg_cone_projection"),
        ("--model.method.cone_projection_type=cone", "cone_projection_type"),
        ("--model.method.guidance_every=0", "guidance_every"),
        ("--model.method.stop_after_flip=1.5", "stop_after_flip"),
        ("--model.method.halves=both", "halves"),
        ("--model.init_args.strength=1.5", "strength"),
        ("--model.no_such_key=1", "no_such_key"),
    ],
)
def test_invalid_values_fail_at_parse_time_naming_the_field(tmp_path, capsys, override, field):
    config = tiny_config(tmp_path, str(tmp_path / "none.tar"))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--config", str(config), override, "--print_config"])
    assert exit_info.value.code != 0 and field in capsys.readouterr().err


@pytest.mark.parametrize("config", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_print_config_works_for_every_shipped_config(capsys, config):
    command = "fit" if "ldce.training." in config.read_text() else "predict"
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--config", str(config), "--print_config"])
    printed = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "model:" in printed and "data:" in printed


def test_shards_command_feeds_predict(tmp_path):
    """``ldce shards`` turns an ImageFolder tree into shards that ``ldce predict`` explains."""
    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / "tree" / name).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "tree" / name / f"{i}.png").write_bytes(png(10 * label + i))
    pattern = str(tmp_path / "shards" / "part-%06d.tar")
    (tmp_path / "shards").mkdir()
    ldce_here("shards", "--input", str(tmp_path / "tree"), "--output", pattern, "--maxcount", "3")
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["part-000000.tar", "part-000001.tar"]
    config = tiny_config(
        tmp_path,
        str(tmp_path / "shards" / "part-{000000..000001}.tar"),
        targets={"class_path": "ldce.targets.ClassPairs", "init_args": {"pairs": {0: 1, 1: 0}}},
    )
    ldce_here("predict", "--config", str(config), "--output_dir", str(tmp_path / "out"))
    done = {r["key"]: (r["source"], r["target"]) for r in records(tmp_path / "out")}
    assert done == {"cat_0": (0, 1), "cat_1": (0, 1), "dog_0": (1, 0), "dog_1": (1, 0)}
