"""A non-editable install puts everything under the ``ldce`` namespace, package data included: the
configs, demo models and demo shard that ``ldce predict --config quickstart`` needs from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_the_ldce_namespace(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ldce-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"ldce"}
    for module in (
        "ldce/method/sampler.py",
        "ldce/method/consensus.py",
        "ldce/cli.py",
        "ldce/datamodules/__init__.py",
        "ldce/callbacks/__init__.py",
        "ldce/backbones/configs/v1-inference.yaml",
        "ldce/configs/quickstart.yaml",
        "ldce/configs/classes/imagenet.txt",
        "ldce/configs/demo/classifier.yaml",
        "ldce/demo/data/fashion_mnist_demo.tar",
        "ldce/demo/weights/classifier/model.safetensors",
    ):
        assert module in names
