"""Targets by visual similarity: the nearest other class, reproducible draws, the published files."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from cli_helpers import png
from paper_files import write_simsiam

from ldce.datamodules.folders import ShardItem
from ldce.datamodules.nearest_targets import choose_targets, main, nearest_other_classes, targets_from_closest_indices
from ldce.datamodules.shards import write_shards


def test_the_nearest_image_of_another_class_decides_the_target():
    """Query 0 (class 0) is closest to a class-0 image, then to class 2, then class 1: target 2."""
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    reference = torch.tensor([[1.0, 0.05], [0.9, 0.3], [0.2, 1.0], [0.7, 0.7]])
    reference_labels = torch.tensor([0, 2, 1, 0])
    assert nearest_other_classes(features, labels, reference, reference_labels, count=2) == [[2, 1], [0, 2]]
    assert nearest_other_classes(features, labels, reference, reference_labels) == [[2], [0]]


def test_a_query_is_never_its_own_target_even_when_it_is_in_the_reference_set():
    features = torch.randn(6, 8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    targets = nearest_other_classes(features, labels, features, labels, count=2)
    assert all(
        own not in classes and len(set(classes)) == 2 for own, classes in zip(labels.tolist(), targets, strict=True)
    )


def test_draws_among_candidates_depend_only_on_seed_and_index():
    candidates = [[3, 4, 5, 6, 7]] * 3
    first = choose_targets(candidates, [10, 11, 12], seed=0)
    assert choose_targets(candidates[::-1], [12, 11, 10], seed=0) == first[::-1]
    assert choose_targets([[9]], [4]) == [9]


def test_the_published_closest_indices_file_becomes_an_index_target_map(tmp_path):
    (tmp_path / "pets_closest_indices.json").write_text(json.dumps({"0": [5, 1, 2], "1": [0, 3]}))
    assert targets_from_closest_indices(tmp_path / "pets_closest_indices.json") == {0: 5, 1: 0}
    main(["--closest_indices", str(tmp_path / "pets_closest_indices.json"), "--output", str(tmp_path / "t.yaml")])
    assert yaml.safe_load((tmp_path / "t.yaml").read_text()) == {0: 5, 1: 0}


def test_command_writes_one_other_class_target_per_shard_index_from_a_simsiam_checkpoint(tmp_path):
    """End to end on tiny shards: SimSiam-format weights → features → ``index: target`` YAML."""
    items = []
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(png(i))
        items.append(ShardItem(tmp_path / f"{i}.png", f"{i}.png", label=i % 3))
    write_shards(items, str(tmp_path / "shards" / "s-%06d.tar"), maxcount=4)
    weights = write_simsiam(tmp_path / "checkpoint_0099.pth.tar")
    main(
        [
            "--shards",
            str(tmp_path / "shards" / "s-{000000..000001}.tar"),
            "--weights",
            str(weights),
            "--image_size",
            "32",
            "--output",
            str(tmp_path / "targets.yaml"),
        ]
    )
    targets = yaml.safe_load((tmp_path / "targets.yaml").read_text())
    assert sorted(targets) == list(range(6))
    assert all(targets[i] in {0, 1, 2} - {i % 3} for i in range(6))


def test_command_requires_weights_for_shards(tmp_path):
    with pytest.raises(SystemExit):
        main(["--shards", "x.tar", "--output", str(tmp_path / "t.yaml")])
