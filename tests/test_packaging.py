"""A non-editable install puts everything under the ``ldce`` namespace, package data included: the
configs, demo models and demo shard that ``ldce predict --config quickstart`` needs from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli_helpers import environment

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w"]
    subprocess.run([*command, str(folder)], check=True, cwd=folder)
    (built,) = folder.glob("ldce-*.whl")
    return built


def test_wheel_installs_only_the_ldce_namespace(wheel):
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
        "ldce/report/templates/report.html.j2",
    ):
        assert module in names


def test_the_installed_package_runs_the_quickstart_from_an_empty_directory(wheel, tmp_path):
    """Installed (not from the source tree) into a folder of its own, ``ldce predict --config quickstart``
    runs where nothing of the repository is: configs, models and data come from the package."""
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(pip, check=True, cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    args = ["predict", "--config", "quickstart", "--trainer.limit_predict_batches", "1", "--wandb.mode", "disabled"]
    installed = f"import ldce; assert ldce.__file__.startswith({str(site)!r}), ldce.__file__"
    code = f"{installed}; from ldce.cli import main; main({args!r})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        env=environment(PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((work / "outputs" / "quickstart" / "summary.json").read_text())
    assert summary["counts"]["done"] == 16 and (work / "outputs" / "quickstart" / "grid.png").is_file()
