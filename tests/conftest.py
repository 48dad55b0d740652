"""Shared fixtures: the golden vectors of the original implementation and offline guards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("LDCE_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """``../shared/golden`` (or ``$LDCE_GOLDEN_DIR``); tests that need it skip where it is absent."""
    if not (GOLDEN_DIR / "tiny_cin_ldm.safetensors").is_file():
        pytest.skip(f"golden vectors of the original implementation not found at {GOLDEN_DIR}")
    return GOLDEN_DIR
