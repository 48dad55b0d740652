"""Per-image targets by visual similarity: the nearest *other* class (Flowers-102, Oxford-IIIT Pets).

The reference chose each image's counterfactual target from self-supervised features (SimSiam
ResNet-50): rank the reference images by cosine similarity to the image, skip those of its own
class, and collect classes in that order. Its published files (``flowers_closest_indices.json``,
``pets_closest_indices.json``) list the 5 nearest classes per test image, shuffled once with a
global random generator, and its runs used the first entry. Here the reference images are the
data set itself by default (as in the reference) or other shards (e.g. the training split), and
the target is the nearest other class (``candidates=1``) or one drawn reproducibly per image from
the ``candidates`` nearest. The result is a YAML ``index: target`` file for
:class:`ldce.targets.TargetMap`::

    python -m ldce.datamodules.nearest_targets --shards "data/flowers/test-{000000..000006}.tar" \\
        --extractor simsiam --weights models/simsiam/checkpoint_0099.pth.tar --output data/flowers/targets.yaml
    python -m ldce.datamodules.nearest_targets --closest_indices flowers_closest_indices.json \\
        --output data/flowers/targets.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from ldce.checks import ArgumentParser
from ldce.classifiers.features import feature_extractor
from ldce.datamodules.webdataset import WebDatasetDataModule

log = logging.getLogger(__name__)


@torch.no_grad()
def shard_features(
    extractor: nn.Module, urls: str, image_size: int = 224, batch_size: int = 32
) -> tuple[Tensor, Tensor, Tensor]:
    """``(features (N, D), labels (N,), indices (N,))`` of every usable sample of the shards.

    Images are squashed to ``image_size²`` as the reference did (``Resize((224, 224))``).
    """
    data = WebDatasetDataModule(urls, batch_size=batch_size, image_size=image_size, resize_mode="resize")
    features, labels, indices = [], [], []
    for batch in data.predict_dataset():
        for failure in batch.failures:
            log.warning("skipping %s: %s", failure.key, failure.reason)
        features.append(extractor(batch.images).flatten(1))
        labels.append(batch.labels)
        indices.append(batch.indices)
    if not features:
        raise ValueError(f"no usable samples in {urls}")
    return torch.cat(features), torch.cat(labels), torch.cat(indices)


def nearest_other_classes(
    features: Tensor, labels: Tensor, reference_features: Tensor, reference_labels: Tensor, count: int = 1
) -> list[list[int]]:
    """Per query: the first ``count`` distinct classes other than its own among the reference
    images ranked by cosine similarity, most similar first.

    features: ``(N, D)``; labels: ``(N,)``; reference_*: ``(M, D)`` and ``(M,)``.
    """
    similarity = nn.functional.normalize(features, dim=1) @ nn.functional.normalize(reference_features, dim=1).t()
    ranked_labels = reference_labels[similarity.argsort(dim=1, descending=True, stable=True)]
    result = []
    for own, ranked in zip(labels.tolist(), ranked_labels.tolist(), strict=True):
        classes = list(dict.fromkeys(label for label in ranked if label != own))[:count]
        if not classes:
            raise ValueError(f"no reference image of a class other than {own}")
        result.append(classes)
    return result


def choose_targets(candidates: Sequence[Sequence[int]], indices: Sequence[int], seed: int = 0) -> list[int]:
    """The first candidate when there is one, else one drawn per image from ``(seed, index)``."""
    return [
        options[0] if len(options) == 1 else int(options[np.random.default_rng([seed, index]).integers(len(options))])
        for options, index in zip(candidates, indices, strict=True)
    ]


def targets_from_closest_indices(path: str | Path) -> dict[int, int]:
    """``{index: first class}`` of the reference's ``*_closest_indices.json`` (what its runs used)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise ValueError(f"{path}: expected {{index: [class, …]}} as in the reference's *_closest_indices.json")
    return {int(index): int(classes[0]) for index, classes in data.items()}


def write_targets(targets: dict[int, int], path: str | Path) -> None:
    """Write ``index: target`` lines (YAML), sorted by index."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(sorted(targets.items())), sort_keys=False))
    log.info("wrote %d targets to %s", len(targets), path)


def similarity_targets(args: argparse.Namespace) -> dict[int, int]:
    """Targets of the ``--shards`` images from the features of ``--extractor``."""
    extractor = feature_extractor(args.extractor, args.weights)
    features, labels, indices = shard_features(extractor, args.shards, args.image_size, args.batch_size)
    reference = (features, labels)
    if args.reference_shards:
        reference = shard_features(extractor, args.reference_shards, args.image_size, args.batch_size)[:2]
    candidates = nearest_other_classes(features, labels, *reference, count=args.candidates)
    return dict(zip(indices.tolist(), choose_targets(candidates, indices.tolist(), args.seed), strict=True))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="ldce targets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="target file to write (YAML index: target)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shards", help="shards of the images to explain (brace pattern)")
    source.add_argument("--closest_indices", type=Path, help="convert the reference's *_closest_indices.json instead")
    parser.add_argument("--extractor", default="simsiam", help="'simsiam' or 'timm:<model name>'")
    parser.add_argument("--weights", help="weights of the feature extractor (local file)")
    parser.add_argument("--reference_shards", help="images whose classes are ranked (default: --shards)")
    parser.add_argument("--candidates", type=int, default=1, help="draw the target from this many nearest classes")
    parser.add_argument("--seed", type=int, default=0, help="seed of that draw")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Compute (or convert) the targets and write them; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.shards and not args.weights:
        parser.error("--weights is required with --shards")
    targets = targets_from_closest_indices(args.closest_indices) if args.closest_indices else similarity_targets(args)
    write_targets(targets, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
