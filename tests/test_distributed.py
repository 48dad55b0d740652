"""Exactly-once outputs across processes, nodes and workers; determinism; kill and resume; W&B offline."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import (
    LDCE,
    counts,
    counts_of,
    environment,
    free_port,
    good_sample,
    ldce,
    outputs_of,
    predict_args,
    records,
    summary,
    tiny_config,
    uneven_shards,
    wandb_run_config,
    write_shard,
)
from PIL import Image

KEYS = [f"s{i:03d}" for i in range(13)]

DDP = ("--trainer.strategy", "ddp", "--trainer.devices", "2")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """13 samples in 3 uneven shards (6, 5, 2): with 2 ranks one gets 2 shards, with 4 one gets none."""
    folder = tmp_path_factory.mktemp("data")
    return folder, uneven_shards(folder / "shards", (6, 5, 2))


@pytest.fixture(scope="module")
def reference(data):
    """One process, batch size 4, no workers."""
    folder, urls = data
    out = folder / "reference"
    # as a command, like the runs compared with it: bitwise equality holds for one thread count
    ldce("predict", "--config", str(tiny_config(folder, urls)), "--output_dir", str(out))
    return outputs_of(out)


def _check_exactly_once(out) -> None:
    keys = [r["key"] for r in records(out)]
    parts = [
        json.loads(line)["key"] for part in (out / "records").glob("*.jsonl") for line in part.read_text().splitlines()
    ]
    assert sorted(parts) == KEYS, "every sample written exactly once, by exactly one rank"
    assert sorted(keys) == KEYS and counts_of(out) == counts(13, 0, 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_two_processes_write_every_sample_once_identically(data, reference, tmp_path, workers):
    folder, urls = data
    config = tiny_config(tmp_path, urls, batch_size=1, num_workers=workers)
    out = tmp_path / "out"
    ldce(*predict_args(config, out, *DDP), env=environment(MASTER_PORT=str(free_port())))
    _check_exactly_once(out)
    assert outputs_of(out) == reference, "outputs identical to one process with batch size 4"


def test_two_nodes_on_localhost_write_every_sample_once(data, reference, tmp_path):
    """2 nodes × 2 processes: 4 ranks over 3 shards, so one rank gets none and must not hang the sync."""
    folder, urls = data
    config, out, port = tiny_config(tmp_path, urls, num_workers=2), tmp_path / "out", str(free_port())
    command = [*LDCE, *predict_args(config, out, *DDP, "--trainer.num_nodes", "2")]
    nodes = [
        subprocess.Popen(
            command,
            env=environment(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    _check_exactly_once(out)
    assert outputs_of(out) == reference


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_resumes_to_the_same_outputs_without_redoing_work(data, reference, tmp_path, stop):
    """SIGKILL at any moment, or SIGTERM (which stops the run after the batch in hand, saying so), leaves
    a folder that the same command completes to the outputs of an uninterrupted run."""
    folder, urls = data
    config, out = tiny_config(tmp_path, urls, batch_size=1), tmp_path / "out"
    command = [sys.executable, "-m", "ldce.cli", "predict", "--config", str(config), "--output_dir", str(out)]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        run = subprocess.Popen(
            command, env=environment(), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        deadline = time.monotonic() + 240
        while len(list((out / "records").glob("*.jsonl"))) < 4 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        os.killpg(run.pid, stop)
        status = run.wait(timeout=120)
    finished = len(list((out / "records").glob("*.jsonl")))
    assert 4 <= finished < 13, "the stop must land mid-way"
    if stop == signal.SIGTERM:
        assert status != 0 and "stopped by SIGTERM: the same command resumes" in (tmp_path / "stderr.txt").read_text()
    ldce("predict", "--config", str(config), "--output_dir", str(out))
    resumed = summary(out)["counts"]
    assert resumed["skipped"] >= finished and resumed["done"] + resumed["skipped"] == 13
    assert outputs_of(out) == reference


def test_wandb_offline_run_holds_the_config_tables_panels_and_curve_inside_the_output_folder(tmp_path):
    """The offline run carries the parsed config (method hyperparameters included), is named after the
    output folder, keeps every file it writes (the table's staged images too) inside that folder, and
    lists the input that could not be used in the table ``failures``."""
    broken = {**good_sample(6), "__key__": "broken", "png": b"not a png"}
    write_shard(tmp_path / "shard.tar", [good_sample(i) for i in range(6)] + [broken])
    config, out = tiny_config(tmp_path, str(tmp_path / "shard.tar")), tmp_path / "out"
    ldce(*predict_args(config, out, "--wandb.mode", "offline", "--wandb_table.max_rows_per_rank", "5"))
    (run,) = glob.glob(str(out / "wandb" / "offline-run-*"))
    run_config, run_name = wandb_run_config(next(Path(run).glob("run-*.wandb")))
    assert run_name == "out" and run_config["model"]["method"]["ddim_steps"] == 10
    assert run_config["model"]["method"]["strength"] == 0.5 and run_config["output_dir"] == str(out)
    assert run_config["trainer"]["accelerator"] == "cpu" and "urls" in run_config["data"]["init_args"]
    (table_file,) = glob.glob(f"{run}/files/media/table/counterfactuals_*.table.json")
    table = json.loads(open(table_file).read())
    assert table["columns"][:3] == ["key", "source", "target"] and len(table["data"]) == 5
    by_key = {r["key"]: r for r in records(out)}
    for row in table["data"]:
        assert row[6] == pytest.approx(by_key[row[0]]["l1"], rel=1e-6)
    staged = [p for p in (out / "wandb" / "data").rglob("*") if p.is_file()]
    sizes = {Image.open(p).size for p in staged if p.read_bytes()[:4] == b"\x89PNG"}
    assert len(sizes) == 1 and min(next(iter(sizes))) >= 128, "the table's panels, staged in the output folder"
    panels = sorted(glob.glob(f"{run}/files/media/images/panels_*.png"))
    assert len(panels) == 5
    first = np.asarray(Image.open(panels[0]))
    assert first.shape[:2] == next(iter(sizes))[::-1] and first.std() > 0, "each panel is a grid row"
    (curve,) = glob.glob(f"{run}/files/media/table/confidence_steps_table_*.table.json")
    lines = json.loads(open(curve).read())["data"]
    assert len(lines) == 5 * 5, "p(target) at each of the 5 guided steps of the 5 rows"
    (failures_file,) = glob.glob(f"{run}/files/media/table/failures_*.table.json")
    failures = json.loads(open(failures_file).read())
    assert failures["columns"] == ["key", "reason", "shard"]
    assert [row[0] for row in failures["data"]] == ["broken"] and failures["data"][0][1]


def test_torchrun_two_processes_write_every_sample_once(data, reference, tmp_path):
    folder, urls = data
    config, out = tiny_config(tmp_path, urls), tmp_path / "out"
    port = str(free_port())
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    command = [*torchrun, "-m", "ldce.cli", *predict_args(config, out, *DDP)]
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    _check_exactly_once(out)
    assert outputs_of(out) == reference
