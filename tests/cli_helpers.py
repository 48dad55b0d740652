"""Building blocks of the end-to-end tests: tiny shards, a tiny config, running ``ldce`` in a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import webdataset
import yaml
from PIL import Image
from safetensors.torch import save_file
from toy import ToyClassifier

TESTS = Path(__file__).resolve().parent


def png(seed: int, mode: str = "RGB", size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, len(mode)), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shard(path: Path, samples: list[dict]) -> None:
    with webdataset.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


def good_sample(i: int) -> dict:
    return {
        "__key__": f"s{i:03d}",
        "png": png(i),
        "cls": str(i % 10).encode(),
        "target.cls": str((i + 1) % 10).encode(),
    }


def uneven_shards(folder: Path, sizes: tuple[int, ...] = (6, 5, 2)) -> str:
    """``sum(sizes)`` good samples over ``len(sizes)`` shards; returns the brace pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for shard, size in enumerate(sizes):
        write_shard(folder / f"shard-{shard:06d}.tar", [good_sample(i) for i in range(start, start + size)])
        start += size
    return str(folder / f"shard-{{000000..{len(sizes) - 1:06d}}}.tar")


def classifier_weights(path: Path) -> Path:
    torch.manual_seed(1)
    save_file(ToyClassifier().state_dict(), str(path))
    return path


def tiny_config(
    folder: Path, urls: str, batch_size: int = 4, num_workers: int = 0, method: dict | None = None, **model: object
) -> Path:
    """A complete ``ldce predict`` config: tiny class-conditional LDM, toy classifier, 5 guided steps."""
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
        "model": {
            "backbone": {
                "class_path": "ldce.testing.models.tiny_class_conditional_ldm",
                "init_args": {"num_classes": 10},
            },
            "classifier": {
                "class_path": "ldce.classifiers.classifier",
                "init_args": {
                    "class_path": "toy.ToyClassifier",
                    "checkpoint": str(classifier_weights(folder / "classifier.safetensors")),
                },
            },
            "method": {"ddim_steps": 10, "strength": 0.5, **(method or {})},
            "step_progress": False,
            "micro_batch_size": 4,
            **model,
        },
        "data": {
            "class_path": "ldce.datamodules.webdataset.WebDatasetDataModule",
            "init_args": {"urls": urls, "batch_size": batch_size, "num_workers": num_workers, "image_size": 32},
        },
        "wandb": {"mode": "disabled"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def environment(**extra: str) -> dict[str, str]:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),  # this checkout's ldce, not another install
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "OMP_NUM_THREADS": "1",
    }
    return env | extra


LDCE = [sys.executable, "-m", "ldce.cli"]
"""The ``ldce`` command of this interpreter."""


def predict_args(config: Path, output_dir: Path, *extra: str) -> list[str]:
    """``predict --config <config> --output_dir <output_dir> <extra…>``."""
    return ["predict", "--config", str(config), "--output_dir", str(output_dir), *extra]


def ldce_run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``ldce <args>`` to completion, whatever its exit code."""
    return subprocess.run([*LDCE, *args], env=env or environment(), capture_output=True, text=True, timeout=timeout)


def ldce(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``ldce <args>`` to completion; fails the test with its output if it fails."""
    command = [*LDCE, *args]
    result = ldce_run(*args, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def ldce_status(*args: str) -> int:
    """Run ``ldce <args>`` in this process (no start-up cost); its exit status. The logging levels,
    handlers and warning filters it sets are put back afterwards."""
    from ldce.commands.console import FRAMEWORKS
    from ldce.entry import main

    names = ("", "ldce", *FRAMEWORKS)
    levels, handlers = {name: logging.getLogger(name).level for name in names}, logging.root.handlers[:]
    with warnings.catch_warnings():
        try:
            main(list(args))
            return 0
        except SystemExit as exit_:
            return exit_.code
        finally:
            logging.root.handlers[:] = handlers
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def ldce_in_process(capsys, *args: str) -> tuple[int, str]:
    """Run ``ldce <args>`` in this process (see :func:`ldce_status`): its exit status and stderr."""
    status = ldce_status(*args)
    return status, capsys.readouterr().err


def ldce_here(*args: str) -> subprocess.CompletedProcess:
    """Run ``ldce <args>`` to completion in this process (no start-up cost: a tiny run takes ~3 s here
    against ~7 s as a command); fails the test with its output if it fails. For runs that need no
    environment of their own."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = ldce_status(*args)
    assert status == 0, f"ldce {' '.join(args)} failed:\n{out.getvalue()[-3000:]}\n{err.getvalue()[-6000:]}"
    return subprocess.CompletedProcess(["ldce", *args], status, out.getvalue(), err.getvalue())


def video_size(path: Path) -> tuple[int, int]:
    """A step video's frame count and width, MP4 (read with PyAV) or GIF (read with Pillow)."""
    if path.suffix == ".mp4":
        import av

        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
        return len(frames), frames[0].width
    with Image.open(path) as video:
        return video.n_frames, video.width


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "records.jsonl").read_text().splitlines()]


def counts(done: int, skipped: int, failed: int) -> dict[str, int]:
    """``summary.json``'s counts of a run over plain shards (no damaged shard, no repeated key)."""
    return {"done": done, "skipped": skipped, "failed": failed, "damaged_shards": 0, "renamed_duplicates": 0}


def counts_of(output: Path) -> dict[str, int]:
    """``summary.json``'s counts without ``already_target`` (which depends on the random classifier)."""
    return {k: v for k, v in summary(output)["counts"].items() if k != "already_target"}


def summary(output: Path) -> dict:
    return json.loads((output / "summary.json").read_text())


def outputs_of(output: Path) -> dict[str, tuple[bytes, dict]]:
    """Per done key: the counterfactual PNG's bytes and the record without its timestamp."""
    result = {}
    for record in records(output):
        if record["status"] == "done":
            facts = {k: v for k, v in record.items() if k != "written_at"}
            result[record["key"]] = ((output / record["files"]["counterfactual"]).read_bytes(), facts)
    return result


def wandb_run_config(path: Path) -> tuple[dict, str]:
    """The config and display name an offline W&B run recorded in its ``run-<id>.wandb`` file: a
    LevelDB-style log (a 7-byte file header, 32 KiB blocks of chunks with a 7-byte header: CRC, length,
    type 1 full / 2 first / 3 middle / 4 last) of ``wandb_internal.Record`` protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending, config, name = path.read_bytes(), 7, b"", {}, ""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind not in (1, 4):
            continue
        record, pending = wandb_internal_pb2.Record.FromString(pending), b""
        which = record.WhichOneof("record_type")
        updates = record.run.config.update if which == "run" else record.config.update if which == "config" else []
        name = record.run.display_name if which == "run" else name
        for item in updates:  # a nested key (W&B's own chart settings) is a path into the config
            *parents, last = list(item.nested_key) or [item.key]
            place = config
            for key in parents:
                place = place.setdefault(key, {})
            place[last] = json.loads(item.value_json)
    return config, name
