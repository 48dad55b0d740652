"""Test accuracy of the demo's exported Fashion-MNIST classifiers on the 10,000 official test images.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classifier_accuracy.py                # both demo models
    .venv/bin/python benchmarks/classifier_accuracy.py ldce/demo/weights/classifier/model.safetensors --update

Each model is rebuilt from its safetensors file and JSON card by :func:`ldce.demo.models.load`;
``--update`` writes the measured accuracy into the card (``test_accuracy``, ``test_command``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from ldce.datamodules.fashion_mnist import DEBIAN_ROOT, load_split
from ldce.demo import WEIGHTS
from ldce.demo.models import accuracy, card_path, load

log = logging.getLogger("classifier_accuracy")
DEFAULT_MODELS = (WEIGHTS / "classifier" / "model.safetensors", WEIGHTS / "independent" / "model.safetensors")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure (and with ``--update`` record) each model's test accuracy; returns ``{path: accuracy}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "weights", nargs="*", type=Path, default=list(DEFAULT_MODELS), help="exported safetensors files"
    )
    parser.add_argument("--root", default=DEBIAN_ROOT, help="Fashion-MNIST folder (IDX files)")
    parser.add_argument("--update", action="store_true", help="write the accuracy into each model's JSON card")
    args = parser.parse_args(argv)
    images, labels = load_split(args.root, "test")
    results = {}
    for path in args.weights:
        started = time.monotonic()
        model = load(path)
        results[str(path)] = score = accuracy(model, images, labels)
        log.info("%s: test accuracy %.4f (%d images, %.1f s)", path, score, len(labels), time.monotonic() - started)
        if args.update:
            card = json.loads(card_path(path).read_text())
            command = shlex.join(
                ["python", "benchmarks/classifier_accuracy.py", *map(str, argv if argv is not None else sys.argv[1:])]
            )
            card.update(test_accuracy=round(score, 5), test_images=len(labels), test_command=command)
            card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
