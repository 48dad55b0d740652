"""The demo's inputs: Fashion-MNIST *test* images with sensible counterfactual targets, as shards.

    python -m ldce.demo.data --output ldce/demo/data/fashion_mnist_demo.tar            # the shipped shard
    python -m ldce.demo.data --output heldout.tar --per_class 50 --start 5000        # a held-out slice

Targets pair classes a person would confuse: shirt ↔ T-shirt/top, pullover ↔ coat,
sneaker ↔ ankle boot, sandal → sneaker, dress → coat. Images are stored as 32×32 grayscale PNGs
(the 28×28 originals padded by 2 pixels), exactly what the demo models were trained on.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import torch
import webdataset
from PIL import Image

from ldce.checks import ArgumentParser
from ldce.datamodules.fashion_mnist import CLASS_NAMES, DEBIAN_ROOT, load_split
from ldce.images import to_uint8

log = logging.getLogger(__name__)

TARGETS = {6: 0, 0: 6, 2: 4, 4: 2, 7: 9, 9: 7, 5: 7, 3: 4}
"""Source class → target class (Fashion-MNIST indices)."""


def select(labels: torch.Tensor, per_class: int, start: int = 0) -> list[int]:
    """The first ``per_class`` test indices ≥ ``start`` of every source class in ``TARGETS``, in index order."""
    chosen = [i for c in TARGETS for i in (labels[start:] == c).nonzero().squeeze(1)[:per_class].add(start).tolist()]
    if len(chosen) < per_class * len(TARGETS):
        raise ValueError(f"fewer than {per_class} test images per class from index {start}")
    return sorted(chosen)


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image[0]), "L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_demo_shard(output: Path, per_class: int = 8, start: int = 0, root: str = DEBIAN_ROOT) -> int:
    """Write one shard of ``per_class × 8`` test images with targets; returns the sample count."""
    images, labels = load_split(root, "test")
    indices = select(labels, per_class, start)
    output.parent.mkdir(parents=True, exist_ok=True)
    with webdataset.TarWriter(str(output)) as sink:
        for i in indices:
            label, target = int(labels[i]), TARGETS[int(labels[i])]
            meta = {
                "index": i,
                "label": label,
                "target": target,
                "class_name": CLASS_NAMES[label],
                "target_name": CLASS_NAMES[target],
            }
            sink.write(
                {
                    "__key__": f"fmnist_test_{i:05d}",
                    "png": _png(images[i]),
                    "cls": str(label),
                    "target.cls": str(target),
                    "json": json.dumps(meta),
                }
            )
    log.info("wrote %d Fashion-MNIST test images to %s", len(indices), output)
    return len(indices)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--per_class", type=int, default=8)
    parser.add_argument("--start", type=int, default=0, help="first test index to draw from")
    parser.add_argument("--root", default=DEBIAN_ROOT, help="Fashion-MNIST IDX files (Debian or torchvision layout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    write_demo_shard(args.output, args.per_class, args.start, args.root)


if __name__ == "__main__":
    main()
