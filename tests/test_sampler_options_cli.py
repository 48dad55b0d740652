"""The original's sampler options through ``ldce predict``: feature distance and self-recurrence end to end."""

from __future__ import annotations

from cli_helpers import ldce_in_process, predict_args, records, tiny_config, uneven_shards
from safetensors.torch import load_file, save_file
from test_feature_distance import VIT, save_tiny_vit, vit_args


def _distance_features(folder) -> dict:
    """``model.distance_features``: a tiny random ViT (32-pixel inputs) from a local file, as any classifier loads."""
    checkpoint = str(save_tiny_vit(folder / "vit.safetensors", 32))
    init_args = {"class_path": VIT, "init_args": {**vit_args(32), "num_classes": 0}, "checkpoint": checkpoint}
    return {"class_path": "ldce.classifiers.classifier", "init_args": init_args}


def test_predict_runs_with_a_feature_distance_and_refuses_to_resume_with_another_extractor(tmp_path, capsys):
    """``lp_custom: dino_cossim`` with ``distance_features`` explains every input; the extractor (its
    weights file's contents) is part of the folder's fingerprint, so other weights are refused."""
    urls = uneven_shards(tmp_path / "data", (2,))
    method = {"lp_custom": "dino_cossim"}
    config = tiny_config(tmp_path, urls, method=method, distance_features=_distance_features(tmp_path))
    status, stderr = ldce_in_process(capsys, "-q", *predict_args(config, tmp_path / "out"))
    assert status == 0, stderr
    assert [r["status"] for r in records(tmp_path / "out")] == ["done", "done"]
    weights = load_file(tmp_path / "vit.safetensors")
    save_file({name: value + 0.01 for name, value in weights.items()}, tmp_path / "vit.safetensors")  # other weights
    status, stderr = ldce_in_process(capsys, "-q", *predict_args(config, tmp_path / "out"))
    assert status != 0 and "model.distance_features.init_args.checkpoint (file)" in stderr, stderr


def test_predict_runs_with_self_recurrence(tmp_path, capsys):
    """``self_recurrence: 2`` every second step explains every input."""
    urls = uneven_shards(tmp_path / "data", (2,))
    config = tiny_config(tmp_path, urls, method={"self_recurrence": 2, "self_recurrence_every_n_steps": 2})
    status, stderr = ldce_in_process(capsys, "-q", *predict_args(config, tmp_path / "out"))
    assert status == 0, stderr
    assert [r["status"] for r in records(tmp_path / "out")] == ["done", "done"]


def test_a_feature_distance_without_an_extractor_fails_at_start_naming_the_fields(tmp_path, capsys):
    """``lp_custom: dino_1`` without ``model.distance_features``: a one-line error before any work."""
    config = tiny_config(tmp_path, uneven_shards(tmp_path / "data", (2,)), method={"lp_custom": "dino_1"})
    status, stderr = ldce_in_process(capsys, "-q", *predict_args(config, tmp_path / "out"))
    assert status == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "model.method.lp_custom 'dino_1'" in stderr and "model.distance_features" in stderr
    assert not (tmp_path / "out" / "records.jsonl").exists()
