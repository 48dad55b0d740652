"""The README's examples work as written: every Python block runs from an empty directory, and every
option of its classifier example is an argument of ``ldce.classifiers.classifier``."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from ldce.classifiers import classifier

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", README, flags=re.S)
YAML = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_the_readme_has_python_examples():
    assert len(PYTHON) >= 2


@pytest.mark.parametrize("block", PYTHON, ids=[f"block {i}" for i in range(len(PYTHON))])
def test_each_python_block_of_the_readme_runs_from_an_empty_directory(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    if "coat.png" in block:
        assert (tmp_path / "coat.png").is_file()


def test_the_classifier_example_names_only_arguments_of_the_classifier_entry():
    examples = [yaml.safe_load(re.sub(r"#\s*(\w+:)", r"\1", block)) for block in YAML if "ldce.classifiers" in block]
    assert examples, "the README shows a classifier config"
    allowed = set(inspect.signature(classifier).parameters)
    for example in examples:
        entry = example["model"]["classifier"]
        assert entry["class_path"] == "ldce.classifiers.classifier"
        assert set(entry["init_args"]) <= allowed, set(entry["init_args"]) - allowed
