"""LDCE itself: configuration, DDIM grid, consensus, guidance terms, the sampler and ``explain``.

Nothing here knows of Lightning, files or W&B.
"""

from ldce.method.config import LDCEConfig
from ldce.method.explain import Counterfactuals, StepTrace, explain

__all__ = ["Counterfactuals", "LDCEConfig", "StepTrace", "explain"]
