"""``ldce evaluate`` on the output folder of a tiny ``ldce predict`` run, on one and two processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import environment, free_port, ldce, ldce_here, records, summary, tiny_config, uneven_shards
from PIL import Image

from ldce.images import quantise, read_image, to_uint8
from ldce.results import store
from ldce.results.record import Record

EVALUATION = {
    "flip_rate",
    "cout",
    "l1_per_image",
    "l1_per_pixel",
    "l2_per_image",
    "l2_per_pixel",
    "fid_toy",
    "sfid_toy",
}
TWO_PROCESSES = ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]


def _metrics_config(classifier_weights: Path) -> dict:
    """FID in the toy classifier's penultimate feature space (the explained classifier, for the test's sake)."""
    toy = {
        "class_path": "ldce.classifiers.classifier",
        "init_args": {"class_path": "toy.ToyClassifier", "checkpoint": str(classifier_weights)},
    }
    features = {"class_path": "ldce.metrics.features.PenultimateFeatures", "init_args": {"model": toy}}
    return {"fid_features": features, "fid_features_name": "toy"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """6 inputs in 2 shards, batch size 4, FID configured: the folder and its summary."""
    folder = tmp_path_factory.mktemp("run")
    config = tiny_config(folder, uneven_shards(folder / "data", (3, 3)))
    extra = folder / "metrics.yaml"
    extra.write_text(yaml.safe_dump({"summary": {"metrics": _metrics_config(folder / "classifier.safetensors")}}))
    out = folder / "out"
    ldce_here("predict", "--config", str(config), "--config", str(extra), "--output_dir", str(out))
    return out, summary(out)


def _evaluate(results, *args: str, env: dict | None = None) -> dict:
    ldce("evaluate", "--results", str(results), *args, env=env)
    return json.loads((results / "metrics.json").read_text())


def test_the_run_writes_the_counterfactual_metrics_to_its_summary(run):
    _, result = run
    assert set(result["evaluation"]) == EVALUATION and result["evaluation_errors"] == {}
    assert all(value is not None for value in result["evaluation"].values())
    caveats = result["evaluation_caveats"]
    assert set(caveats) == {"fid_toy", "sfid_toy"} and "over 6 pairs" in caveats["fid_toy"], "6 pairs, 16 dimensions"
    assert result["evaluation"]["flip_rate"] == pytest.approx(result["metrics"]["flip_rate"], rel=1e-6), (
        "the 8-bit counterfactuals flip as the float ones"
    )


@pytest.fixture(scope="module")
def one_process(run, tmp_path_factory):
    """``ldce evaluate`` of a copy of the run's folder, one process, batches of 2 (the run used 4)."""
    out, _ = run
    return _evaluate(shutil.copytree(out, tmp_path_factory.mktemp("one") / "results"), "--batch_size", "2")


def test_evaluate_reproduces_the_summary_the_run_wrote(run, one_process):
    """Same 8-bit pixels in the run and from the PNGs: equal up to float round-off of the batch layout."""
    _, result = run
    assert one_process["pairs"] == 6 and one_process["evaluation_errors"] == {}
    assert one_process["evaluation_caveats"] == result["evaluation_caveats"]
    assert one_process["metrics"] == pytest.approx(result["metrics"], rel=1e-6)
    assert one_process["evaluation"] == pytest.approx(result["evaluation"], rel=1e-6, abs=1e-9)


def test_a_folder_of_ldce_0_1_evaluates_from_its_config(run, one_process, tmp_path):
    """Without manifest.json, the explained classifier and metrics come from a 0.1-layout config.yaml."""
    out, _ = run
    results = shutil.copytree(out, tmp_path / "legacy")
    (results / "manifest.json").unlink()
    config = yaml.safe_load((results / "config.yaml").read_text())
    current = config["model"]["classifier"]["init_args"]  # 0.1: one loader per source, preprocessing flat
    old = {"class_path": current["class_path"], "weights_path": current["checkpoint"], "crop": None}
    config["model"]["classifier"] = {"class_path": "ldce.classifiers.module_classifier", "init_args": old}
    config["model"] = {"class_path": "ldce.module.CounterfactualModule", "init_args": config["model"]}
    (results / "config.yaml").write_text(yaml.safe_dump(config))
    legacy = _evaluate(results, "--batch_size", "2")
    assert legacy["evaluation"] == one_process["evaluation"] and legacy["metrics"] == one_process["metrics"]


def test_two_processes_evaluate_to_the_values_of_one(run, one_process, tmp_path):
    out, _ = run
    one = one_process
    two = _evaluate(
        shutil.copytree(out, tmp_path / "two"), *TWO_PROCESSES, env=environment(MASTER_PORT=str(free_port()))
    )
    assert two["pairs"] == one["pairs"] == 6
    assert two["metrics"] == pytest.approx(one["metrics"], rel=1e-12)
    assert two["evaluation"] == pytest.approx(one["evaluation"], rel=1e-9, abs=1e-12)


def test_a_process_without_pairs_neither_hangs_nor_changes_the_result(run, tmp_path):
    """One pair, two processes: rank 1 has nothing to evaluate and still takes part in the sync."""
    out, _ = run
    results = tmp_path / "single"
    record = records(out)[0]
    for name in ("original", "counterfactual"):
        (results / record["files"][name]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / record["files"][name], results / record["files"][name])
    shutil.copy(out / "manifest.json", results / "manifest.json")
    store.write_records(results, 0, [Record.from_dict(record)])
    one = _evaluate(results)
    two = _evaluate(results, *TWO_PROCESSES, env=environment(MASTER_PORT=str(free_port())))
    assert two == one and one["pairs"] == 1
    assert one["evaluation"]["fid_toy"] is None and one["evaluation"]["l1_per_image"] == pytest.approx(
        record["l1"], rel=1e-3
    )


def test_missing_weights_are_named_with_their_config_key_and_the_rest_is_computed(run, tmp_path):
    out, _ = run
    results = shutil.copytree(out, tmp_path / "results")
    config = tmp_path / "metrics.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "metrics": {
                    "lpips_weights": str(tmp_path / "alexnet.pth"),
                    "simsiam_weights": str(tmp_path / "simsiam.pth"),
                }
            }
        )
    )
    command = ldce_here("evaluate", "--results", str(results), "--config", str(config))
    evaluated = json.loads((results / "metrics.json").read_text())
    errors = evaluated["evaluation_errors"]
    assert set(errors) == {"lpips", "s3"}
    assert (
        "(config key metrics.lpips_weights)" in errors["lpips"]
        and "(config key metrics.simsiam_weights)" in errors["s3"]
    )
    assert "metric lpips not computed" in command.stderr and "alexnet.pth' is not a local file" in command.stderr
    assert set(evaluated["evaluation"]) == EVALUATION - {"fid_toy", "sfid_toy"}
    assert all(value is not None for value in evaluated["evaluation"].values())


def test_quantised_images_equal_the_saved_png_read_back(tmp_path):
    """The run's metrics see the pixels that ``ldce evaluate`` reads from the writer's PNGs, bit for bit."""
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 1.2 - 0.1
    for i, image in enumerate(images):
        Image.fromarray(to_uint8(image)).save(tmp_path / f"{i}.png")
        assert torch.equal(read_image(tmp_path / f"{i}.png"), quantise(image))
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{i}.png")), to_uint8(image))
