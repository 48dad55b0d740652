"""ldce: latent diffusion counterfactual explanations (LDCE, arXiv 2310.06668) and what goes beyond it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ldce")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
