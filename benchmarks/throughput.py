"""Counterfactuals per second of the quickstart with 1 and with 2 processes (DDP, CPU by default).

    python benchmarks/throughput.py [--processes 1 2] [--threads 1] [--accelerator cpu|gpu]

Each run is ``ldce predict --config configs/quickstart.yaml`` into a fresh folder (W&B off) over the
demo's 64 inputs re-written as 4 shards of 16 (work is split between processes by shard); the rate
is inputs done / the predict loop's seconds from ``summary.json`` (start-up and model loading
excluded; the total wall time is printed too). With ``--threads 1`` every process gets one thread,
so that 2 processes use the 2 cores of a small machine without oversubscribing them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_SHARD = REPO / "ldce" / "demo" / "data" / "fashion_mnist_demo.tar"


def split_demo_shard(folder: Path, per_shard: int) -> str:
    """The 64 demo inputs re-written as shards of ``per_shard`` (work is split by shard); their pattern."""
    import webdataset

    folder.mkdir(parents=True, exist_ok=True)
    with webdataset.ShardWriter(str(folder / "demo-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for sample in webdataset.WebDataset(str(DEMO_SHARD), shardshuffle=False):
            sink.write({k: v for k, v in sample.items() if k != "__url__" and k != "__local_path__"})
    count = len(list(folder.glob("demo-*.tar")))
    return str(folder / f"demo-{{000000..{count - 1:06d}}}.tar")


def run(processes: int, threads: int, accelerator: str, folder: Path, urls: str) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "ldce.cli",
        "predict",
        "--config",
        str(REPO / "configs" / "quickstart.yaml"),
        "--output_dir",
        str(folder),
        "--wandb.mode",
        "disabled",
        "--trainer.accelerator",
        accelerator,
        "--trainer.devices",
        str(processes),
        "--data.urls",
        urls,
    ]
    if processes > 1:
        command += ["--trainer.strategy", "ddp"]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MASTER_PORT": str(29500 + processes)}
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=folder.parent, check=True, capture_output=True)
    wall = time.perf_counter() - start
    summary = json.loads((folder / "summary.json").read_text())
    done = summary["counts"]["done"]
    return {
        "processes": processes,
        "done": done,
        "loop_seconds": summary["seconds"],
        "wall_seconds": wall,
        "rate": done / summary["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--accelerator", default="cpu", help="the trainer's accelerator (gpu: one device per process)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = split_demo_shard(Path(tmp) / "shards", 16)
        for processes in args.processes:
            rows.append(run(processes, args.threads, args.accelerator, Path(tmp) / f"p{processes}", urls))
    base = rows[0]["rate"]
    print(
        f"{'processes':>9} {'inputs':>6} {'loop s':>7} {'wall s':>7} {'cf/s':>6} {'scaling':>7}"
        f"   ({args.accelerator}, {args.threads} thread(s) per process)"
    )
    for r in rows:
        print(
            f"{r['processes']:>9} {r['done']:>6} {r['loop_seconds']:>7.1f} {r['wall_seconds']:>7.1f} "
            f"{r['rate']:>6.2f} {r['rate'] / base:>6.2f}×"
        )


if __name__ == "__main__":
    main()
