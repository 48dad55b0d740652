"""Guidance terms: each a small object whose scores add up to the guided noise (see ``base``)."""

from ldce.method.terms.base import GuidanceTerm, ImageGradient, StepInputs, Task, TermOutput
from ldce.method.terms.classifier import ClassifierGuidance, Consensus
from ldce.method.terms.distance import DistanceGuidance
from ldce.method.terms.feature_distance import FeatureDistanceGuidance, distance_term
from ldce.method.terms.free import ClassifierFreeGuidance

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "Consensus",
    "DistanceGuidance",
    "FeatureDistanceGuidance",
    "GuidanceTerm",
    "ImageGradient",
    "StepInputs",
    "Task",
    "TermOutput",
    "distance_term",
]
