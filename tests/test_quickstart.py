"""The shipped quickstart explains real Fashion-MNIST test images with the shipped trained models."""

from __future__ import annotations

import tarfile
from pathlib import Path

from cli_helpers import environment, ldce, predict_args, records, summary

from ldce.demo import TARGETS, demo_batches

REPO = Path(__file__).resolve().parents[1]
DEMO_SHARD = REPO / "ldce" / "demo" / "data" / "fashion_mnist_demo.tar"


def _first_samples(source: Path, target: Path, count: int) -> None:
    """Copy the first ``count`` samples (all their entries) of a shard into a new shard."""
    with tarfile.open(source) as reader, tarfile.open(target, "w") as writer:
        keys: list[str] = []
        for member in reader.getmembers():
            key = member.name.split(".", 1)[0]
            if key not in keys:
                keys.append(key)
            if len(keys) > count:
                break
            writer.addfile(member, reader.extractfile(member))


def test_quickstart_turns_most_of_eight_demo_images_into_their_target(tmp_path):
    shard = tmp_path / "eight.tar"
    _first_samples(DEMO_SHARD, shard, 8)
    out = tmp_path / "out"
    extra = ("--data.urls", str(shard), "--wandb.mode", "disabled")
    ldce(*predict_args(REPO / "configs" / "quickstart.yaml", out, *extra), env=environment(), timeout=600)
    done = records(out)
    assert len(done) == 8 and summary(out)["counts"]["done"] == 8
    flipped = sum(r["prediction"] == r["target"] for r in done)
    assert flipped >= 6, f"only {flipped} of 8 counterfactuals reach their target"
    assert (out / "grid.png").is_file()


def test_the_demo_batches_are_keys_images_labels_and_targets():
    keys, images, labels, targets = next(demo_batches(4))
    assert len(keys) == 4 and images.shape == (4, 3, 32, 32) and labels.shape == targets.shape == (4,)
    assert all(TARGETS[int(label)] == int(target) for label, target in zip(labels, targets, strict=True))
