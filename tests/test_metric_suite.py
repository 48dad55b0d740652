"""The metric suite: same values from 1 and 2 processes, missing weights, LPIPS backbone, penultimate features."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from cli_helpers import free_port
from torch import nn
from toy import ToyClassifier

from ldce.images import quantise
from ldce.metrics import CD, MNAC, Closeness, CosineSimilarity, MetricsConfig, MetricSuite, Pairs, build_suite
from ldce.metrics.config import Build, MetricUnavailable, _correlation_difference, judged_by
from ldce.metrics.features import PenultimateFeatures
from ldce.metrics.frechet import FID, SplitFID
from ldce.metrics.lpips import LPIPS

KEYS = [f"s{i}" for i in range(5)]


def _pairs(indices: list[int]) -> Pairs:
    """Pairs ``indices`` of 5 fixed random 8 × 8 pairs (3 classes)."""
    generator = torch.Generator().manual_seed(0)
    original, counterfactual = (
        quantise(torch.rand(5, 3, 8, 8, generator=generator)),
        quantise(torch.rand(5, 3, 8, 8, generator=generator)),
    )
    source, target = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1, 2, 0, 2, 0])
    return Pairs(
        [KEYS[i] for i in indices], original[indices], counterfactual[indices], source[indices], target[indices]
    )


def _suite() -> MetricSuite:
    """Every kind of metric: the built-in ones with a toy classifier and FID in its feature space, plus
    MNAC, CD and a cosine similarity judged by a toy 5-attribute oracle."""
    torch.manual_seed(1)
    classifier = ToyClassifier(num_classes=3).eval()
    suite = build_suite(
        MetricsConfig(fid_features=PenultimateFeatures(classifier), fid_features_name="toy"), classifier
    )
    oracle = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    extra = {
        "mnac": (MNAC(query=0), judged_by("oracle")),
        "cd": (CD(0, torch.linspace(-1, 1, 5)), judged_by("oracle")),
        "cosine": (CosineSimilarity(), judged_by("oracle")),
    }
    metrics = {name: (metric, suite.feeds[name]) for name, metric in suite.metrics.items()} | extra
    return MetricSuite(dict(suite.models) | {"oracle": oracle}, metrics, {})


def _evaluate(shares: list[list[int]]) -> dict:
    suite = _suite()
    for share in shares:
        if share:
            suite.update(_pairs(share))
    return suite.compute()


LAYOUTS = {"one-rank-empty": [[0, 1, 2, 3, 4], []], "uneven": [[0, 2, 4], [3, 1]]}


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    values = {name: _evaluate([shares[rank]]) for name, shares in LAYOUTS.items()}
    if rank == 0:
        Path(out).write_text(json.dumps(values))
    dist.destroy_process_group()


def test_two_processes_compute_the_values_of_one(tmp_path):
    """Each metric synced over 2 gloo processes equals one process with all pairs, for an uneven split
    and for one rank without pairs, which takes part in every sync (no hang) and contributes nothing."""
    reference = _evaluate([[0, 1], [2, 3, 4]])
    assert set(reference) == {
        "flip_rate",
        "cout",
        "l1_per_image",
        "l1_per_pixel",
        "l2_per_image",
        "l2_per_pixel",
        "fid_toy",
        "sfid_toy",
        "mnac",
        "cd",
        "cosine",
    }
    assert all(value is not None for value in reference.values())
    out = tmp_path / "values.json"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    for layout, values in json.loads(out.read_text()).items():
        assert values == pytest.approx(reference, rel=1e-9, abs=1e-12), layout


def test_missing_weights_name_the_metric_and_key_and_the_rest_is_computed(tmp_path):
    missing = str(tmp_path / "absent.pth")
    config = MetricsConfig(
        lpips_weights=missing,
        simsiam_weights=missing,
        face_weights=missing,
        oracle_weights=missing,
        fid_inception_weights=missing,
        fid_features=nn.Linear(3, 3),
        fid_features_name="plain",
    )
    suite = build_suite(config, ToyClassifier(num_classes=3), prefix="summary.metrics.")
    keys = {
        "lpips": "lpips_weights",
        "s3": "simsiam_weights",
        "fva, fs": "face_weights",
        "mnac, cd": "oracle_weights",
        "fid_inception": "fid_inception_weights",
        "fid_plain": "fid_features",
    }
    assert set(suite.errors) == set(keys)
    for metric, key in keys.items():
        assert (
            f"metric {metric} not computed" in suite.errors[metric]
            and f"(config key summary.metrics.{key})" in suite.errors[metric]
        )
    assert "is not a local file" in suite.errors["lpips"] and "num_features" in suite.errors["fid_plain"]
    suite.update(_pairs([0, 1, 2]))
    values = suite.compute()
    assert set(values) == {"flip_rate", "cout", "l1_per_image", "l1_per_pixel", "l2_per_image", "l2_per_pixel"}
    assert all(value is not None for value in values.values())


def test_lpips_takes_its_backbone_from_a_local_torchvision_file(tmp_path):
    torch.manual_seed(0)
    features = {f"features.{name}": value for name, value in torchvision.models.alexnet().features.state_dict().items()}
    path = tmp_path / "alexnet.pth"
    torch.save(features | {"classifier.1.weight": torch.zeros(2, 2)}, path)
    metric = LPIPS(str(path))
    assert torch.equal(metric.network.net.slice1[0].weight, features["features.0.weight"])
    assert torch.equal(metric.network.net.state_dict()["slice5.10.bias"], features["features.10.bias"])
    generator = torch.Generator().manual_seed(4)
    pairs = Pairs(
        list("abcd"),
        torch.rand(4, 3, 64, 64, generator=generator),
        torch.rand(4, 3, 64, 64, generator=generator),
        torch.zeros(4, dtype=torch.int64),
        torch.ones(4, dtype=torch.int64),
    )
    same = LPIPS(str(path))
    same.update(pairs.original, pairs.original)
    assert same.compute().item() == pytest.approx(0.0, abs=1e-7), "LPIPS(x, x) = 0"
    metric.update(pairs.original[:3], pairs.counterfactual[:3])
    metric.update(pairs.original[3:], pairs.counterfactual[3:])
    per_pair = metric.network(pairs.original, pairs.counterfactual, normalize=True).flatten()
    assert metric.compute().item() == pytest.approx(per_pair.double().mean().item(), rel=1e-6) and per_pair.min() > 0


def test_penultimate_features_are_the_input_of_the_last_linear_layer():
    classifier = ToyClassifier(num_classes=3).eval()
    extractor = PenultimateFeatures(classifier)
    images = _pairs([0, 1]).original
    assert extractor.num_features == 16
    assert torch.equal(extractor(images), classifier.net[:-1](images))


def test_cd_is_built_from_training_labels_and_needs_the_queried_attribute(tmp_path):
    labels = tmp_path / "list_attr_celeba.txt"
    labels.write_text("3\nA B\nx.jpg 1 -1\ny.jpg -1 -1\nz.jpg 1 1\n")
    build = Build(
        MetricsConfig(oracle_weights="oracle.tar", query_attribute=0, attribute_labels=str(labels)), None, "metrics."
    )
    build.models["oracle"] = nn.Identity()
    _correlation_difference(build)
    metric, _ = build.metrics["cd"]
    assert metric.correlations.tolist() == pytest.approx([1.0, 0.5])
    unset = Build(MetricsConfig(oracle_weights="oracle.tar", attribute_labels=str(labels)), None, "metrics.")
    unset.models["oracle"] = nn.Identity()
    with pytest.raises(MetricUnavailable, match=r"metric cd not computed: .*\(config key metrics.query_attribute\)"):
        _correlation_difference(unset)


def test_a_metric_undefined_for_too_few_or_no_inputs_says_why_and_a_defined_one_does_not():
    suite = _suite()
    nothing = suite.compute()
    assert set(suite.problems(nothing, 0)) == set(nothing), "no pairs: every metric is undefined"
    assert all("no counterfactual was made" in text for text in suite.problems(nothing, 0).values())
    suite.update(_pairs([0]))
    values = suite.compute()
    undefined = {name for name, value in values.items() if value is None}
    assert {"fid_toy", "sfid_toy"} <= undefined and set(suite.problems(values, 1)) == undefined
    assert "too few" in suite.problems(values, 1)["fid_toy"]
    suite.reset()
    suite.update(_pairs([0, 1, 2, 3, 4]))
    values = suite.compute()
    assert values["fid_toy"] is not None and "fid_toy" not in suite.problems(values, 5)


@pytest.mark.parametrize(
    ("pairs", "flagged"), [(4, {"fid", "sfid"}), (5, {"sfid"}), (9, {"sfid"}), (10, set()), (500, set())]
)
def test_a_frechet_distance_over_fewer_pairs_than_full_rank_covariances_need_carries_a_caveat(pairs, flagged):
    """FID needs D + 1 pairs for a full-rank covariance of each side (here D = 4), sFID twice that (one per
    half); a metric without a value (undefined) has a problem, not a caveat."""
    suite = MetricSuite(
        {}, {"fid": (FID(4), None), "sfid": (SplitFID(4), None), "l1": (Closeness(1, "image"), None)}, {}
    )
    caveats = suite.caveats({"fid": 1.0, "sfid": 2.0, "l1": 3.0}, pairs)
    assert set(caveats) == flagged
    assert all(f"over {pairs} pairs" in text and "4 feature dimensions" in text for text in caveats.values())
    assert suite.caveats({"fid": None, "sfid": None, "l1": 3.0}, 4) == {}
