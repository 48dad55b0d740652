"""Speed against quality on the demo: exact LDCE, each fast-guidance switch and combinations of them.

    python benchmarks/speed_quality.py                       # 200 held-out images, every row (~10 min)
    python benchmarks/speed_quality.py --heldout 24 --rows "exact LDCE" "guidance every 2"
    python benchmarks/speed_quality.py --row "mine: guidance_every=2, scale=4"   # an extra row

The demo models (``ldce.demo``) at the hyperparameters of ``configs/quickstart.yaml``, each row with
its own overrides of those (``ldce.method.config.LDCEConfig`` fields; ``ldce.method.fast`` for the
switches). The rows run side by side in one process: every batch goes through every row in turn, so
a slower or busier machine weighs on all rows alike. Columns: seconds per counterfactual (wall time
of ``explain`` over the images, after one warm-up call; with ``--repeats R`` each batch's time is the
median of R runs), flip rate on the explained classifier,
agreement of the independent judge classifier with the target, mean L1, COUT and the FID in the
judge's feature space (``demo_judging.py``). Writes the table (``.txt``), the numbers (``.json``) and
a plot of judge agreement against seconds per counterfactual with the Pareto front (``.png``) to
``--output`` (default ``benchmarks/results/speed_quality``). Rows whose fields this checkout's
``LDCEConfig`` lacks are skipped with a warning.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path

import matplotlib
import torch
import yaml
from demo_judging import Row, flip_rate, heldout_slice, quickstart_config

from ldce import demo
from ldce.method.config import LDCEConfig
from ldce.method.explain import explain

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the file backend)

log = logging.getLogger(__name__)

STOP = {"stop_after_flip": 0.9, "stop_after_flip_steps": 3}
ROWS: dict[str, dict[str, object]] = {
    "exact LDCE": {},
    "guidance every 2": {"guidance_every": 2},
    "guidance every 3": {"guidance_every": 3},
    "stop after flip (p .9, m 3)": STOP,
    "stop after flip (p .75, m 2)": {"stop_after_flip": 0.75, "stop_after_flip_steps": 2},
    "ddim_steps 25": {"ddim_steps": 25},
    "ddim_steps 17": {"ddim_steps": 17},
    "no noise-model backprop": {"backprop_noise_model": False},
    "every 2 + stop": {"guidance_every": 2, **STOP},
    "every 3 + stop": {"guidance_every": 3, **STOP},
    "ddim 25 + every 2": {"ddim_steps": 25, "guidance_every": 2},
    "ddim 25 + every 3": {"ddim_steps": 25, "guidance_every": 3},
    "ddim 17 + every 2": {"ddim_steps": 17, "guidance_every": 2},
    "ddim 25 + stop": {"ddim_steps": 25, **STOP},
    "every 2 + stop + no backprop": {"guidance_every": 2, **STOP, "backprop_noise_model": False},
    "every 2 + no backprop": {"guidance_every": 2, "backprop_noise_model": False},
    "ddim 25 + no backprop": {"ddim_steps": 25, "backprop_noise_model": False},
    "ddim 25 + every 2 + no backprop": {"ddim_steps": 25, "guidance_every": 2, "backprop_noise_model": False},
}
COLUMNS = ("s/cf", "speed-up", "flip rate", "judge agrees", "L1", "COUT", "FID (judge)")


def parse_row(text: str) -> tuple[str, dict[str, object]]:
    """``"name: field=value, field=value"`` (values in YAML) → ``(name, overrides)``."""
    name, _, assignments = text.partition(":")
    pairs = [item.split("=", 1) for item in assignments.split(",") if item.strip()]
    return name.strip(), {key.strip(): yaml.safe_load(value) for key, value in pairs}


def configs(base: LDCEConfig, rows: dict[str, dict[str, object]]) -> dict[str, LDCEConfig]:
    """Each row's config; rows naming fields ``LDCEConfig`` lacks are skipped (logged)."""
    known, chosen = {f.name for f in dataclasses.fields(LDCEConfig)}, {}
    for name, overrides in rows.items():
        missing = sorted(set(overrides) - known)
        if missing:
            log.warning("skipping row %r: this LDCEConfig has no field %s", name, ", ".join(missing))
            continue
        chosen[name] = dataclasses.replace(base, **overrides)
    return chosen


def run_rows(batches, variants: dict[str, LDCEConfig], seed: int, repeats: int) -> dict[str, dict[str, object]]:
    """Every batch through every row in turn: per row the judged summary and the seconds per counterfactual
    (per batch the median over ``repeats`` runs, which give the same images)."""
    backbone, explained, judge = demo.backbone(), demo.classifier(), demo.independent_classifier()
    features = demo.judge_features()
    rows = {name: Row(explained, judge, features) for name in variants}
    seconds = dict.fromkeys(variants, 0.0)
    keys, images, _, targets = batches[0]
    explain(images[:2], targets[:2], backbone, explained, next(iter(variants.values())), seed=seed, keys=keys[:2])
    for keys, images, sources, targets in batches:
        for name, config in variants.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                result = explain(images, targets, backbone, explained, config, seed=seed, keys=keys)
                times.append(time.perf_counter() - start)
            seconds[name] += statistics.median(times)
            rows[name].update(images, result.images, sources, targets)
    count = sum(len(batch[0]) for batch in batches)
    return {name: {"seconds": seconds[name] / count, **row.summary()} for name, row in rows.items()}


def numbers(results: dict[str, dict[str, object]]) -> dict[str, dict[str, float]]:
    """The table's numbers per row (plain floats)."""
    reference = next(iter(results.values()))["seconds"]
    return {
        name: {
            "s/cf": s["seconds"],
            "speed-up": reference / s["seconds"],
            "flip rate": float(flip_rate(s)),
            "judge agrees": float(s["agree"].mean()),
            "L1": float(s["l1"].mean()),
            "COUT": float(s["cout"]),
            "FID (judge)": float(s["fid"]),
        }
        for name, s in results.items()
    }


def table(title: str, rows: dict[str, dict[str, float]]) -> str:
    header = f"{'row':<30} " + " ".join(f"{c:>12}" for c in COLUMNS)
    lines = [title, header]
    for name, r in rows.items():
        lines.append(
            f"{name:<30} {r['s/cf']:>12.3f} {r['speed-up']:>11.2f}× {r['flip rate']:>12.1%} "
            f"{r['judge agrees']:>12.1%} {r['L1']:>12.1f} {r['COUT']:>12.3f} {r['FID (judge)']:>12.2f}"
        )
    return "\n".join(lines)


def pareto_front(rows: dict[str, dict[str, float]]) -> list[str]:
    """Rows no other row beats on both axes (faster and at least as much judge agreement), by speed."""
    ordered = sorted(rows, key=lambda name: (rows[name]["s/cf"], -rows[name]["judge agrees"]))
    front, best = [], -1.0
    for name in ordered:
        if rows[name]["judge agrees"] > best:
            front.append(name)
            best = rows[name]["judge agrees"]
    return front


def plot(title: str, rows: dict[str, dict[str, float]], path: Path) -> None:
    """Judge agreement against seconds per counterfactual: each row a numbered point (names in the key on
    the right, the Pareto front in red and joined)."""
    figure, axes = plt.subplots(figsize=(12, 5.5))
    front = pareto_front(rows)
    key = []
    for number, (name, r) in enumerate(rows.items(), 1):
        x, y = r["s/cf"], 100 * r["judge agrees"]
        axes.scatter(x, y, color="C3" if name in front else "C0", zorder=3)
        axes.annotate(str(number), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        key.append(f"{number:>2}  {name}  ({r['flip rate']:.1%} flips)")
    axes.step(
        [rows[n]["s/cf"] for n in front], [100 * rows[n]["judge agrees"] for n in front], "C3--", where="post", lw=1
    )
    axes.set_xlabel("seconds per counterfactual")
    axes.set_ylabel("judge agrees with the target (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.text(0.665, 0.5, "\n".join(key), fontsize=8, family="monospace", va="center")
    figure.subplots_adjust(left=0.07, right=0.645, bottom=0.1, top=0.92)
    figure.savefig(path, dpi=150)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=int, default=200, help="the first N of the 200 held-out test images")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS), help="rows to run, in order")
    parser.add_argument("--row", action="append", default=[], type=parse_row, help='extra "name: field=value, …"')
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per batch and row (median)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    configs_dir = Path(__file__).resolve().parents[1] / "configs"
    parser.add_argument("--config", type=Path, default=configs_dir / "quickstart.yaml")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "speed_quality")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from --output's JSON")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.output.with_suffix(".json").read_text())
        plot(saved["title"], saved["rows"], args.output.with_suffix(".png"))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = quickstart_config(args.config)
    variants = configs(base, {name: ROWS[name] for name in args.rows} | dict(args.row))
    batches = heldout_slice(args.heldout, args.batch_size)
    count = sum(len(batch[0]) for batch in batches)
    rows = numbers(run_rows(batches, variants, args.seed, args.repeats))
    title = (
        f"demo, {count} held-out images, {args.config.name} (strength {base.strength}, {base.ddim_steps} DDIM steps); "
        f"{torch.get_num_threads()} CPU threads; speed-up vs. {next(iter(rows))}"
    )
    text = table(title, rows)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".txt").write_text(text + "\n")
    args.output.with_suffix(".json").write_text(json.dumps({"title": title, "rows": rows}, indent=1) + "\n")
    plot(title, rows, args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
