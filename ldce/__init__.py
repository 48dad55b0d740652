"""ldce: latent diffusion counterfactual explanations (LDCE, arXiv 2310.06668) and what goes beyond it."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ldce.checks import did_you_mean

try:
    __version__ = version("ldce")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

CONFIGS = Path(__file__).resolve().parent / "configs"
"""The configs that ship with ldce (``quickstart`` is ``CONFIGS / "quickstart.yaml"``)."""


def shipped_config(name: str) -> Path:
    """The file of the config that ships with ldce called ``name`` (``quickstart`` or ``quickstart.yaml``).

    Raises ``LookupError`` ("'<name>' is neither a file nor a config that ships with ldce; did you mean …?",
    or the list of shipped names when none is close).
    """
    shipped = {path.stem: path for path in CONFIGS.glob("*.yaml")}
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    if stem in shipped:
        return shipped[stem]
    hint = did_you_mean(stem, shipped) or f" (shipped: {', '.join(sorted(shipped))})"
    raise LookupError(f"{name!r} is neither a file nor a config that ships with ldce{hint}")
