"""Resuming into a results folder keeps it one consistent run: what a user changes or damages between
runs is either explained again or named, never silently mixed in."""

from __future__ import annotations

import json

from cli_helpers import (
    counts,
    good_sample,
    ldce_here,
    ldce_in_process,
    predict_args,
    records,
    summary,
    tiny_config,
    write_shard,
)


def _shard(path, samples):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_shard(path, samples)
    return str(path)


def _relabelled(i: int, target: int) -> dict:
    return {**good_sample(i), "target.cls": str(target).encode()}


def test_an_overwrite_leaves_only_its_own_results_so_a_later_resume_never_mixes_settings(tmp_path):
    three = _shard(tmp_path / "data" / "three.tar", [good_sample(i) for i in range(3)])
    one = _shard(tmp_path / "data" / "one.tar", [good_sample(0)])
    config, out = tiny_config(tmp_path, three), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    ldce_here(
        *predict_args(
            config, out, "--data.init_args.urls", one, "--model.method.strength", "0.3", "--writer.overwrite", "true"
        )
    )
    assert [r["key"] for r in records(out)] == ["s000"]
    assert sorted(p.name for p in (out / "counterfactual").iterdir()) == ["s000.png"]
    ldce_here(*predict_args(config, out, "--model.method.strength", "0.3"))
    assert summary(out)["counts"] == counts(2, 1, 0) | {"already_target": summary(out)["counts"]["already_target"]}


def test_a_label_outside_the_classifier_fails_that_input_only_and_evaluate_still_works(tmp_path):
    samples = [good_sample(0), {**good_sample(1), "__key__": "bad", "cls": b"12"}, good_sample(2)]
    config, out = tiny_config(tmp_path, _shard(tmp_path / "data" / "a.tar", samples)), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    by_key = {r["key"]: r for r in records(out)}
    assert (
        by_key["bad"]["status"] == "failed"
        and "label 12 outside the classifier's classes [0, 10)" in by_key["bad"]["reason"]
    )
    assert by_key["s000"]["status"] == by_key["s002"]["status"] == "done"
    ldce_here("evaluate", "--results", str(out))
    assert json.loads((out / "metrics.json").read_text())["pairs"] == 2


def test_a_shard_listed_twice_is_refused_naming_it(tmp_path, capsys):
    shard = _shard(tmp_path / "data" / "c.tar", [good_sample(0)])
    status, stderr = ldce_in_process(
        capsys, *predict_args(tiny_config(tmp_path, json.dumps([shard, shard])), tmp_path / "out")
    )
    assert status == 2 and f"shard {shard} is listed 2 times" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_adding_a_shard_that_repeats_keys_keeps_the_done_inputs_and_explains_only_the_new_ones(tmp_path):
    first = _shard(tmp_path / "data" / "a-000000.tar", [good_sample(i) for i in range(2)])
    _shard(tmp_path / "data" / "a-000001.tar", [good_sample(i + 5) | {"__key__": f"s{i:03d}"} for i in range(2)])
    config, out = tiny_config(tmp_path, first), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    ldce_here(*predict_args(config, out, "--data.init_args.urls", str(tmp_path / "data" / "a-{000000..000001}.tar")))
    result = summary(out)
    assert {k: result["counts"][k] for k in ("done", "skipped", "renamed_duplicates")} == {
        "done": 2,
        "skipped": 2,
        "renamed_duplicates": 2,
    }
    assert sorted(r["key"] for r in records(out)) == ["s000", "s000@a-000001", "s001", "s001@a-000001"]
    assert result["folder"] == {"done": 4, "failed": 0}


def test_changed_targets_under_the_same_keys_are_explained_again(tmp_path):
    config, out = (
        tiny_config(tmp_path, _shard(tmp_path / "d1" / "a.tar", [_relabelled(i, 3) for i in range(2)])),
        tmp_path / "out",
    )
    ldce_here(*predict_args(config, out))
    relabelled = _shard(tmp_path / "d2" / "a.tar", [_relabelled(0, 3), _relabelled(1, 7)])
    ldce_here(*predict_args(config, out, "--data.init_args.urls", relabelled))
    assert summary(out)["counts"]["done"] == 1 and summary(out)["counts"]["skipped"] == 1
    assert {r["key"]: r["target"] for r in records(out)} == {"s000": 3, "s001": 7}


def test_damaged_outputs_and_records_cost_only_themselves_on_the_next_run(tmp_path):
    config, out = (
        tiny_config(tmp_path, _shard(tmp_path / "data" / "a.tar", [good_sample(i) for i in range(3)])),
        tmp_path / "out",
    )
    ldce_here(*predict_args(config, out))
    (out / "original" / "s000.png").write_bytes((out / "original" / "s000.png").read_bytes()[:50])
    part = next((out / "records").glob("*.jsonl"))
    lines = part.read_text().splitlines()
    edited = json.loads(lines[1])
    del edited["l1"]
    part.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    run = ldce_here(*predict_args(config, out))
    assert "skipping a line that is not a record" in run.stderr and "grid.png leaves out s000" in run.stderr
    assert summary(out)["counts"]["done"] == 1 and (out / "grid.png").is_file()
    ldce_here("evaluate", "--results", str(out))
    assert json.loads((out / "metrics.json").read_text())["pairs"] == 2


def test_a_repaired_shard_leaves_no_failure_behind(tmp_path):
    whole = tmp_path / "whole.tar"
    write_shard(whole, [good_sample(i) for i in range(10)])
    cut = tmp_path / "data" / "a.tar"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    config, out = tiny_config(tmp_path, str(cut)), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    assert summary(out)["counts"]["damaged_shards"] == 1
    cut.write_bytes(whole.read_bytes())
    ldce_here(*predict_args(config, out))
    result = summary(out)
    assert result["counts"]["damaged_shards"] == 0 and result["folder"] == {"done": 10, "failed": 0}
    assert all(r["status"] == "done" for r in records(out))


def test_a_folder_of_a_version_without_the_newer_settings_resumes_unless_one_is_used(tmp_path, capsys):
    """Settings added later (``method.guidance_every``, ``speedups.contiguous_attention``,
    ``distance_features``) are absent from an older folder's fingerprint: at their defaults they are no
    change; set otherwise they are, named."""
    config, out = tiny_config(tmp_path, _shard(tmp_path / "data" / "a.tar", [good_sample(0)])), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    manifest = json.loads((out / "manifest.json").read_text())
    newer = ("model.method.guidance_every", "model.speedups.contiguous_attention", "model.distance_features")
    manifest["fingerprint"] = {k: v for k, v in manifest["fingerprint"].items() if k not in newer}
    (out / "manifest.json").write_text(json.dumps(manifest))
    status, stderr = ldce_in_process(capsys, *predict_args(config, out, "--model.method.guidance_every", "2"))
    assert status != 0 and "model.method.guidance_every: (unset) → 2" in stderr
    ldce_here(*predict_args(config, out))
    assert summary(out)["counts"]["skipped"] == 1
