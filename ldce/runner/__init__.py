"""The Lightning runner of ``ldce predict``: ``CounterfactualModule`` and its typed output, ``Prediction``."""

from ldce.runner.module import CounterfactualModule
from ldce.runner.prediction import Prediction

__all__ = ["CounterfactualModule", "Prediction"]
