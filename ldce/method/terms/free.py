"""Classifier-free guidance as a term: ``score = d = e_c − e_u``, so ``ê = e_u + scale·(e_c − e_u)``."""

from __future__ import annotations

from torch import Tensor

from ldce.method.terms.base import GuidanceTerm, StepInputs, TermOutput


class ClassifierFreeGuidance(GuidanceTerm):
    """The implicit classifier ``d`` itself (``guidance: free``); no classifier, no gradient."""

    def score(self, inputs: StepInputs, latent_gradient: Tensor | None) -> TermOutput:
        return TermOutput(inputs.implicit)
