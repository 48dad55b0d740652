"""Loading a state dict strictly: every weight of the model filled, with the right shape, nothing left over."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from ldce.checkpoints.reader import CheckpointError

OPTIONAL_SUFFIXES = ("num_batches_tracked",)
"""Buffers a published file may lack (BatchNorm's counter, unused in eval mode)."""


def check_fits(model: nn.Module, state: dict[str, Tensor], where: str | Path, what: str) -> None:
    """Raise :class:`CheckpointError` naming ``where`` and ``what`` unless ``state`` fits ``model`` exactly."""
    own = model.state_dict()
    missing = sorted(k for k in own.keys() - state.keys() if not k.endswith(OPTIONAL_SUFFIXES))
    unexpected = sorted(state.keys() - own.keys())
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own.keys() & state.keys()
        if state[k].shape != own[k].shape
    )
    problems = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": shapes}
    if any(problems.values()):
        text = "; ".join(f"{len(v)} {k} {v[:5]}" for k, v in problems.items() if v)
        raise CheckpointError(f"{where}: does not fit {what} (wrong architecture?): {text}")


def load_strict(model: nn.Module, state: dict[str, Tensor], where: str | Path, what: str, assign: bool = False) -> None:
    """:func:`check_fits`, then load ``state`` into ``model`` (``assign``: take the tensors themselves,
    e.g. into a model built on the meta device)."""
    check_fits(model, state, where, what)
    model.load_state_dict(state, strict=False, assign=assign)
