"""Weight files: one reader (safetensors, torch pickles without running their code, numpy pickles),
one error type and one strict-load check."""

from ldce.checkpoints.reader import (
    CheckpointError,
    Placeholder,
    existing_dir,
    existing_file,
    load_file_content,
    load_torch_file,
    read_tensors,
)
from ldce.checkpoints.strict import check_fits, load_strict

__all__ = [
    "CheckpointError",
    "Placeholder",
    "check_fits",
    "existing_dir",
    "existing_file",
    "load_file_content",
    "load_strict",
    "load_torch_file",
    "read_tensors",
]
