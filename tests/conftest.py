"""Shared fixtures: the golden vectors of the original implementation and offline guards."""

from __future__ import annotations

import os
import socket
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


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket use fails loudly, so that a silent hub look-up cannot pass for a clear local error."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
