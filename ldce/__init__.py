"""ldce: latent diffusion counterfactual explanations (LDCE, arXiv 2310.06668) and what goes beyond it."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("ldce")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

CONFIGS = Path(__file__).resolve().parent / "configs"
"""The configs that ship with ldce (``quickstart`` is ``CONFIGS / "quickstart.yaml"``)."""
