"""Which class each input's counterfactual should reach: target policies."""

from ldce.targets.policies import (
    NO_TARGET,
    BinaryFlip,
    ClassPairs,
    FixedTarget,
    FromSample,
    SecondMostLikely,
    TargetMap,
    TargetPolicy,
)

__all__ = [
    "NO_TARGET",
    "BinaryFlip",
    "ClassPairs",
    "FixedTarget",
    "FromSample",
    "SecondMostLikely",
    "TargetMap",
    "TargetPolicy",
]
