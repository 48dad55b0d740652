"""Gathering Python objects from every rank, for what torchmetrics cannot sync (keys, failures, files)."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def gather_lists(items: list[Any]) -> list[Any]:
    """Concatenate a list from every rank, in rank order (a collective: every rank must call it);
    ``items`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    gathered: list[list[Any]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]
