"""The house plan holds: the import rules between folders, formatting and lint, small files, documented folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCES = [
    *sorted((REPO / "ldce").rglob("*.py")),
    *sorted((REPO / "datamodules").glob("*.py")),
    *sorted((REPO / "callbacks").glob("*.py")),
]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_every_folder_imports_only_the_folders_its_layer_allows():
    """``lint-imports`` checks the contracts in pyproject.toml (layers; no Lightning/W&B in the method)."""
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_ruff_is_clean(command):
    result = _run(str(BIN / "ruff"), *command, ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_source_file_is_longer_than_300_lines():
    long = {str(p.relative_to(REPO)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_the_readme_names_every_package_folder():
    readme = (REPO / "README.md").read_text()
    folders = sorted(p.parent.name for p in (REPO / "ldce").glob("*/__init__.py"))
    missing = [name for name in folders if f"`ldce/{name}/`" not in readme]
    assert not missing
