"""LDCE itself: configuration, DDIM grid, consensus, guidance terms, the sampler and ``explain``.

Nothing here knows of Lightning, files or W&B.
"""

from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.outputs import Counterfactuals, StepTrace

__all__ = ["Counterfactuals", "LDCEConfig", "StepTrace", "explain"]
