"""Inputs and results folders as users have them: every one gives a result or a clear, named failure.

One run over odd shards checks that nothing is lost: every good input is written, every bad one has a
record with its reason, the counts add up to the inputs seen and the run exits 0. The other tests check
the refusals that must come before any work, each naming what is wrong.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from cli_helpers import (
    good_sample,
    ldce_here,
    ldce_in_process,
    predict_args,
    records,
    summary,
    tiny_config,
    write_shard,
)
from PIL import Image

SIXTEEN_BIT = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64  # 0 … 65472, 1024 gray levels
CJK_KEY = "鍵" * 30


def _png16() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(SIXTEEN_BIT).save(buffer, format="PNG")
    return buffer.getvalue()


def _sample(key: str, i: int, **entries) -> dict:
    return {**good_sample(i), "__key__": key, **entries}


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Three shards: plain keys, the same keys again (numbered from 0 like the first shard), and a
    shard cut off at 60 %; plus a 16-bit PNG, a 30-character CJK key, a key with a slash and a key
    whose file cannot be written."""
    folder = tmp_path_factory.mktemp("odd")
    (folder / "data").mkdir()
    first = [_sample("s000", 0), _sample("s001", 1), _sample("deep", 2, png=_png16()), _sample(CJK_KEY, 3)]
    write_shard(folder / "data" / "part-000000.tar", first + [_sample("sub/dir/key", 4), _sample("w000", 5)])
    write_shard(folder / "data" / "part-000001.tar", [_sample("s000", 6), _sample("s001", 7)])
    write_shard(folder / "data" / "whole.tar", [_sample(f"t{i:03d}", 10 + i) for i in range(10)])
    data = (folder / "data" / "whole.tar").read_bytes()
    (folder / "data" / "part-000002.tar").write_bytes(data[: int(len(data) * 0.6)])
    (folder / "data" / "whole.tar").unlink()
    out = folder / "out"
    (out / "original" / "w000.png").mkdir(parents=True)  # a folder where the file should go: that write fails
    config = tiny_config(folder, str(folder / "data" / "part-{000000..000002}.tar"))
    result = ldce_here(*predict_args(config, out))
    return folder, out, records(out), summary(out), result


def test_odd_shards_lose_nothing_and_every_outcome_is_recorded(odd):
    _, out, written, result, run = odd
    by_key = {r["key"]: r for r in written}
    done = {k for k, r in by_key.items() if r["status"] == "done"}
    renamed = {"s000@part-000001", "s001@part-000001"}  # the first occurrence keeps its key
    readable_rest = {f"t{i:03d}" for i in range(6)}  # 60 % of the cut shard
    assert done == {"s000", "s001"} | renamed | readable_rest | {"deep", CJK_KEY, "sub/dir/key"}
    assert {by_key[k]["original_key"] for k in renamed} == {"s000", "s001"}
    assert by_key["s000"]["shard"].endswith("part-000000.tar") and "original_key" not in by_key["s000"]
    damaged = [r for r in written if r.get("damaged_shard")]
    assert len(damaged) == 1 and "part-000002.tar broke after 6 samples" in damaged[0]["reason"]
    assert "could not write its files" in by_key["w000"]["reason"] and by_key["w000"]["status"] == "failed"
    counts = {k: v for k, v in result["counts"].items() if k != "already_target"}
    assert counts == {"done": 13, "skipped": 0, "failed": 1, "damaged_shards": 1, "renamed_duplicates": 2}
    assert counts["done"] + counts["failed"] + counts["skipped"] == len(written) - len(damaged)
    files = [r["files"][name] for r in written if r["status"] == "done" for name in ("original", "counterfactual")]
    assert len(set(files)) == len(files) and all((out / f).is_file() for f in files)
    assert "WARNING" in run.stderr and "repeat a key of an earlier input" in run.stderr


def test_a_sixteen_bit_image_keeps_its_gray_levels(odd):
    _, out, written, _, _ = odd
    (deep,) = [r for r in written if r["key"] == "deep"]
    original = np.asarray(Image.open(out / deep["files"]["original"]).convert("L"))
    expected = np.round(SIXTEEN_BIT / 65535 * 255)
    assert len(np.unique(original)) > 200 and np.abs(original - expected).max() <= 1


def test_keys_that_are_no_file_names_are_written_under_safe_unique_names(odd):
    _, out, written, _, _ = odd
    for key in (CJK_KEY, "sub/dir/key"):
        (record,) = [r for r in written if r["key"] == key]
        name = record["files"]["counterfactual"]
        assert name.startswith("counterfactual/") and "/" not in name.removeprefix("counterfactual/")
        assert len(name) < 100 and (out / name).is_file()


def test_duplicate_keys_can_stop_the_run_naming_both_shards(odd, capsys):
    folder, *_ = odd
    config = tiny_config(folder, str(folder / "data" / "part-{000000..000001}.tar"))
    status, stderr = ldce_in_process(
        capsys, *predict_args(config, folder / "strict", "--data.init_args.duplicate_keys", "fail")
    )
    assert status != 0 and "'s000' in part-000000, part-000001" in stderr
    assert not (folder / "strict" / "records").exists()


def test_missing_shards_are_all_named_before_any_model_loads(odd, capsys):
    folder, *_ = odd
    urls = json.dumps(
        [str(folder / "data" / "part-000000.tar"), str(folder / "nope-1.tar"), str(folder / "nope-2.tar")]
    )
    status, stderr = ldce_in_process(capsys, *predict_args(tiny_config(folder, urls), folder / "missing"))
    assert status != 0 and "2 of 3 shards not found" in stderr
    assert "nope-1.tar" in stderr and "nope-2.tar" in stderr
    assert "tiny_class_conditional_ldm" not in stderr and not (folder / "missing" / "records").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--data.init_args.image_size", "30"], "data.image_size is 30, but the backbone works on 32×32 images"),
        (["--trainer.precision", "bf16-true"], "trainer.precision 'bf16-true' is not supported by ldce predict"),
        (["--trainer.inference_mode", "true"], "trainer.inference_mode must be false"),
    ],
    ids=["image size", "true bf16", "inference mode"],
)
def test_settings_ldce_cannot_honour_are_refused_before_any_work(odd, flags, named, capsys):
    folder, *_ = odd
    config = tiny_config(folder, str(folder / "data" / "part-000001.tar"))
    status, stderr = ldce_in_process(capsys, *predict_args(config, folder / "refused", *flags))
    assert status != 0 and named in stderr
    assert not (folder / "refused" / "records").exists()


def test_a_resume_with_other_settings_is_refused_and_a_summary_is_never_emptied(odd, tmp_path, capsys):
    folder, *_ = odd
    config, out = tiny_config(tmp_path, str(folder / "data" / "part-000001.tar")), tmp_path / "out"
    ldce_here(*predict_args(config, out))
    first = summary(out)
    status, stderr = ldce_in_process(
        capsys, *predict_args(config, out, "--model.method.strength", "0.3", "--model.seed", "4")
    )
    assert status != 0
    assert "model.method.strength: 0.5 → 0.3" in stderr and "model.seed: 0 → 4" in stderr
    assert summary(out) == first
    ldce_here(*predict_args(config, out))
    again = summary(out)
    assert again["counts"]["skipped"] == 2 and again["folder"] == first["folder"] == {"done": 2, "failed": 0}
    assert again["evaluation"] == first["evaluation"] and again["metrics"] == first["metrics"]
    ldce_here(*predict_args(config, out, "--model.method.strength", "0.3", "--writer.overwrite", "true"))
    assert summary(out)["counts"]["done"] == 2


def test_evaluate_names_skips_and_counts_what_is_damaged(odd, tmp_path):
    _, out, written, _, _ = odd
    results = shutil.copytree(out, tmp_path / "damaged")
    done = sorted(r["key"] for r in written if r["status"] == "done")
    by_key = {r["key"]: r for r in written}
    (results / by_key[done[0]]["files"]["counterfactual"]).write_bytes(b"")
    (results / by_key[done[1]]["files"]["original"]).unlink()
    part = next((results / "records").glob("*.jsonl"))
    part.write_text(part.read_text() + '{"key": "cut off", "status": "do')
    ldce_here("evaluate", "--results", str(results))
    metrics = json.loads((results / "metrics.json").read_text())
    where = [item["where"] for item in metrics["skipped"]["items"]]
    assert metrics["skipped"]["count"] == 3 and metrics["pairs"] == len(done) - 2
    assert by_key[done[0]]["files"]["counterfactual"] in where and by_key[done[1]]["files"]["original"] in where
    assert any(w.startswith(f"records/{part.name}:") for w in where)


def test_evaluate_on_a_missing_folder_fails_and_creates_nothing(tmp_path, capsys):
    status, stderr = ldce_in_process(capsys, "evaluate", "--results", str(tmp_path / "typo"))
    assert status != 0 and "is not an ldce results folder" in stderr
    assert not (tmp_path / "typo").exists()
