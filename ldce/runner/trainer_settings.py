"""The trainer settings ``ldce predict`` honours; any other value is refused before anything is built.

- ``precision``: ``32-true`` (``32``), ``bf16-mixed`` (``bf16``) or ``16-mixed`` (``16``). Under the mixed
  ones only the networks run in reduced precision and the guidance stays float32; the ``*-true``
  precisions (``bf16-true``, ``16-true``, ``64-true``) would cast the guidance arithmetic and the batch.
- ``inference_mode``: false — guidance differentiates through the networks.
- ``barebones``: false — the writer, summary and W&B table are callbacks.
- ``strategy``: one that copies the model to every process (``auto``, ``ddp``, ``ddp_spawn``, …);
  model-sharding strategies (FSDP, DeepSpeed) are not supported.
"""

from __future__ import annotations

from typing import Any

PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16")
SHARDING = ("fsdp", "deepspeed")


class UnsupportedTrainerSetting(ValueError):
    """A trainer setting ``ldce predict`` cannot honour; the message names it and the values that work."""


def check_trainer(trainer: dict[str, Any]) -> None:
    """Raise :class:`UnsupportedTrainerSetting` for the first setting of ``trainer`` (the parsed
    ``trainer`` group) that ``ldce predict`` cannot honour."""
    precision = trainer.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        usable = ", ".join(PRECISIONS[::2])
        raise UnsupportedTrainerSetting(
            f"trainer.precision {precision!r} is not supported by ldce predict; use one of {usable} "
            "(the mixed precisions run the networks in reduced precision and keep the guidance in float32)"
        )
    for name in ("inference_mode", "barebones"):
        if trainer.get(name):
            raise UnsupportedTrainerSetting(f"trainer.{name} must be false for ldce predict (got true)")
    strategy = trainer.get("strategy")
    if isinstance(strategy, str) and any(kind in strategy.lower() for kind in SHARDING):
        raise UnsupportedTrainerSetting(
            f"trainer.strategy {strategy!r} shards the model, which ldce predict does not support; use auto or ddp"
        )
