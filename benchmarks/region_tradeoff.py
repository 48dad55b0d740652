"""What a region buys and costs: closeness and judge-space FID against judge agreement, on the held-out 200.

    python benchmarks/region_tradeoff.py                  # every row (last run: 36 min, 2 cores shared)
    python benchmarks/region_tradeoff.py --heldout 48 --rows "LDCE" "consensus, c .8"

Plain LDCE and region-constrained LDCE (``source: consensus`` and ``gradient``) over the classifier
weight ``classifier_lambda`` and the composite's ``confidence``, plus a stronger distance term
(``dist_lambda``), less noise (``strength``) and two passes (the second explains the original again
inside the first's composite region, one pixel wider, as a ``given`` region); every other setting is that of
``configs/quickstart.yaml`` (method) and ``configs/quickstart_minimal.yaml`` (region; its own
``classifier_lambda`` and ``confidence`` are rows here). The reference
row is no method: real test images of each input's target class (``demo_quality.RealTargets``), the
judge-space FID that perfect counterfactuals would have. Columns as ``demo_quality.py``. Writes the
table (``.txt``), the numbers (``.json``) and two panels — L1 and FID against judge agreement, with
the issue's bar (judge ≥ 85.5 %, L1 ≤ 141, FID ≤ 9.4) shaded — to ``--output``
(default ``benchmarks/results/region_tradeoff``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import matplotlib
import torch
from demo_judging import Row, flip_rate, heldout_slice, quickstart_config
from demo_quality import RealTargets, region_config, table

from ldce import demo
from ldce.method.explain import explain
from ldce.method.region import RegionInputs

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the file backend)

log = logging.getLogger(__name__)

REFERENCE = "real images of the target"
TWO_PASSES = "two passes, λc 5"  # consensus, then the given region: the first composite's M, 1 pixel wider
SECOND_PASS = {"source": "given", "threshold": 0.5}
BAR = {"agree": 0.855, "l1": 141.0, "fid": 9.4}
CONSENSUS = {"source": "consensus"}
GRADIENT = {"source": "gradient", "share": 0.25}
# name: (LDCEConfig overrides, RegionConfig overrides or None for plain LDCE)
ROWS: dict[str, tuple[dict[str, object], dict[str, object] | None]] = {
    "LDCE": ({}, None),
    "LDCE, λc 3.5": ({"classifier_lambda": 3.5}, None),
    "LDCE, λc 5": ({"classifier_lambda": 5.0}, None),
    "LDCE, no consensus": ({"guidance": "unprojected"}, None),
    "consensus, c .7": ({}, {**CONSENSUS, "confidence": 0.7}),
    "consensus, c .8": ({}, {**CONSENSUS, "confidence": 0.8}),
    "consensus, c .9": ({}, {**CONSENSUS, "confidence": 0.9}),
    "consensus, λc 3.5, c .7": ({"classifier_lambda": 3.5}, {**CONSENSUS, "confidence": 0.7}),
    "consensus, λc 3.5, c .8": ({"classifier_lambda": 3.5}, {**CONSENSUS, "confidence": 0.8}),
    "consensus, λc 3.5, c .9": ({"classifier_lambda": 3.5}, {**CONSENSUS, "confidence": 0.9}),
    "consensus, λc 5, c .7": ({"classifier_lambda": 5.0}, {**CONSENSUS, "confidence": 0.7}),
    "consensus, λc 5, c .8": ({"classifier_lambda": 5.0}, {**CONSENSUS, "confidence": 0.8}),
    "gradient, λc 3.5, c .8": ({"classifier_lambda": 3.5}, {**GRADIENT, "confidence": 0.8}),
    "unprojected, grad .4, c .9": ({"guidance": "unprojected"}, {**GRADIENT, "share": 0.4, "confidence": 0.9}),
    "consensus, λc 5, dist .6": ({"classifier_lambda": 5.0, "dist_lambda": 0.6}, CONSENSUS),
    "consensus, λc 5, dist 1.2": ({"classifier_lambda": 5.0, "dist_lambda": 1.2}, CONSENSUS),
    "consensus, λc 8, strength .4": ({"classifier_lambda": 8.0, "strength": 0.4}, CONSENSUS),
    TWO_PASSES: ({"classifier_lambda": 5.0}, CONSENSUS),
}


def run_rows(names: list[str], batches, args) -> dict[str, dict[str, torch.Tensor]]:
    backbone, explained, judge = demo.backbone(), demo.classifier(), demo.independent_classifier()
    method, region = quickstart_config(args.config), region_config(args.region_config)
    features = demo.judge_features()
    rows = {name: Row(explained, judge, features) for name in [*names, REFERENCE]}
    real_targets = RealTargets()
    for keys, images, sources, targets in batches:
        for name in names:
            overrides, region_overrides = ROWS[name]
            config = dataclasses.replace(method, **overrides)
            inputs = None if region_overrides is None else RegionInputs(dataclasses.replace(region, **region_overrides))
            result = explain(images, targets, backbone, explained, config, seed=args.seed, keys=keys, region=inputs)
            if name == TWO_PASSES:
                inputs = RegionInputs(dataclasses.replace(inputs.config, **SECOND_PASS), masks=wider(result.region))
                result = explain(images, targets, backbone, explained, config, seed=args.seed, keys=keys, region=inputs)
            rows[name].update(images, result.images, sources, targets)
        rows[REFERENCE].update(images, real_targets(targets), sources, targets)
    return {name: row.summary() for name, row in rows.items()}


def wider(masks: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` pixel regions in [0, 1], one pixel wider (3 × 3 max)."""
    return torch.nn.functional.max_pool2d(masks, 3, stride=1, padding=1)


def numbers(rows: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Each row's means: flip rate, judge agreement, L1, FID and the share of changed pixels."""
    return {
        name: {
            "flip": float(flip_rate(s)),
            "agree": float(s["agree"].mean()),
            "l1": float(s["l1"].mean()),
            "fid": float(s["fid"]),
            "changed": float(s["changed"].mean()),
        }
        for name, s in rows.items()
    }


def style(name: str, flip: float) -> dict[str, object]:
    """Marker of a row: black star the reference, blue circle LDCE, orange square a region; hollow: flip < 95 %."""
    colour = "black" if name == REFERENCE else ("tab:blue" if name.startswith("LDCE") else "tab:orange")
    marker = "*" if name == REFERENCE else ("o" if name.startswith("LDCE") else "s")
    return {"marker": marker, "edgecolors": colour, "facecolors": colour if flip >= 0.95 else "white"}


def plot(points: dict[str, dict[str, float]], path: Path) -> None:
    """L1 and FID against judge agreement, each row numbered (the legend names them); the bar's corner shaded."""
    figure, axes = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    numbered = {name: number for number, name in enumerate(points, 1)}
    panels = (("l1", "mean L1 (pixels in [0, 1], 3 × 32 × 32)"), ("fid", "FID (judge features)"))
    for axis, (key, label) in zip(axes, panels, strict=True):
        shown = {name: p for name, p in points.items() if not (name == REFERENCE and key == "l1")}
        high = max(p[key] for p in shown.values()) * 1.08
        low = min(min(p["agree"] for p in shown.values()) * 100 - 3, BAR["agree"] * 100 - 5)
        axis.fill_between([BAR["agree"] * 100, 100], 0, BAR[key], color="tab:green", alpha=0.15)
        placed: list[tuple[float, float]] = []
        for name, p in shown.items():  # the reference's L1 compares unrelated images: not drawn
            x, y = p["agree"] * 100, p[key]
            axis.scatter(x, y, s=70, zorder=3, **style(name, p["flip"]))
            crowded = any(abs(x - u) < 1.5 and abs(y - v) < 0.04 * high for u, v in placed)
            offset = (-14, -11) if crowded else (5, 3)  # a label next to an earlier one goes below left
            axis.annotate(str(numbered[name]), (x, y), fontsize=8, xytext=offset, textcoords="offset points")
            placed.append((x, y))
        axis.set(xlabel="judge agrees with the target (%)", ylabel=label, ylim=(0, high), xlim=(low, 100))
        axis.grid(alpha=0.3)
    axes[0].set_title(
        "closeness (hollow: flip rate < 95 %; green: the issue's bar; the reference is unrelated images)", fontsize=9
    )
    axes[1].set_title("judge-space FID to the originals (green: the issue's bar)", fontsize=9)
    handles = [
        axes[1].scatter([], [], s=50, label=f"{numbered[name]}: {name}", **style(name, p["flip"]))
        for name, p in points.items()
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    figure.savefig(path, dpi=110)


def positive(text: str) -> int:
    """An ``--heldout`` count: an integer ≥ 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--heldout", type=positive, default=200, help="held-out test images (a prefix mixing the classes)"
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    configs = Path(__file__).resolve().parents[1] / "configs"
    parser.add_argument("--config", type=Path, default=configs / "quickstart.yaml")
    parser.add_argument("--region_config", type=Path, default=configs / "quickstart_minimal.yaml")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "region_tradeoff")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    rows = run_rows(args.rows, heldout_slice(args.heldout, args.batch_size), args)
    text = table(f"held-out test slice, seed {args.seed}", rows) + f"\n({time.perf_counter() - start:.0f} s)\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".txt").write_text(text)
    points = numbers(rows)
    args.output.with_suffix(".json").write_text(json.dumps(points, indent=1))
    plot(points, args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
