"""The README's side-by-side picture: original | LDCE | region-constrained LDCE | region, on demo images.

    python benchmarks/region_figure.py            # writes docs/region_side_by_side.png (~20 s on 2 cores)

LDCE with the quickstart's settings (``configs/quickstart.yaml``) and region-constrained LDCE with those
of ``configs/quickstart_minimal.yaml``, on the first ``--count`` demo images, seed 0, in groups of the
config's ``micro_batch_size`` (so the pictures are those ``ldce predict`` makes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ldce import demo
from ldce.classifiers.names import class_name
from ldce.compat.legacy import migrate_config
from ldce.images import to_uint8
from ldce.method import LDCEConfig, explain
from ldce.method.region import RegionConfig, RegionInputs
from ldce.results.pictures import SHARE_CMAP, ColourScale, Columns, GridRow, grid, region_view

ROOT = Path(__file__).resolve().parents[1]


def model_block(path: Path) -> dict:
    """The ``model`` block of a ``ldce predict`` config, read as ldce reads configs."""
    return migrate_config(yaml.safe_load(path.read_text()))[0]["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "region_side_by_side.png")
    args = parser.parse_args()
    quickstart, model = (
        model_block(ROOT / "configs" / f"{name}.yaml") for name in ("quickstart", "quickstart_minimal")
    )
    plain_config, config = LDCEConfig(**quickstart["method"]), LDCEConfig(**model["method"])
    region, group = RegionConfig(**model["region"]), model["micro_batch_size"]  # as `ldce predict` groups inputs
    keys, images, sources, targets = next(demo.demo_batches(args.count))
    backbone, classifier = demo.backbone(), demo.classifier()
    common = {"seed": 0, "keys": keys, "micro_batch_size": group}
    plain = explain(images, targets, backbone, classifier, plain_config, **common)
    minimal = explain(images, targets, backbone, classifier, config, region=RegionInputs(region), **common)
    rows = []
    for i in range(len(keys)):
        tiles = [images[i], plain.images[i], minimal.images[i], region_view(images[i], minimal.region[i, 0])]
        source, target = (class_name(demo.CLASS_NAMES, int(c)) for c in (sources[i], targets[i]))
        flips = [" (no flip)" if result.prediction[i] != targets[i] else "" for result in (plain, minimal)]
        caption = (
            f"{source} → {target}: L1 {plain.l1[i]:.0f}{flips[0]} vs {minimal.l1[i]:.0f}{flips[1]}, "
            f"region {minimal.region[i].mean():.0%}"
        )
        rows.append(GridRow([to_uint8(t) for t in tiles], [caption]))
    plain_name, minimal_name = (f"λc {c.classifier_lambda:g}" for c in (plain_config, config))
    headers = ["original", f"LDCE ({plain_name})", f"region-constrained LDCE ({minimal_name})", "region"]
    columns = Columns(headers, [ColourScale(3, SHARE_CMAP, "region: 1 = may change")])
    grid(rows, columns).save(args.output)


if __name__ == "__main__":
    main()
