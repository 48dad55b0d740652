"""The golden vectors of the original implementation (``../shared/golden``): their classifier and configs.

The tiny classifier is ``ldce.testing.models.small_cnn`` on [0, 1] images; each run's JSON names the
original's options (``strength``, ``ddim_steps``, ``sampler.*``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from ldce.method.config import LDCEConfig
from ldce.testing.models import small_cnn

RUNS = ("ldce_run", "ldce_run_guidance_free", "ldce_run_cone_default_PATCHED")


def tiny_classifier(golden: Path) -> nn.Module:
    """The golden runs' classifier with its weights (``tiny_classifier.safetensors``), frozen, in eval mode."""
    net = small_cnn(10)
    net.load_state_dict(load_file(str(golden / "tiny_classifier.safetensors")))
    return net.eval().requires_grad_(False)


def config_of(meta: dict[str, Any]) -> LDCEConfig:
    """The :class:`LDCEConfig` of a golden run's JSON (the original's option names)."""
    sampler = meta["sampler"]
    return LDCEConfig(
        strength=meta["strength"],
        ddim_steps=meta["ddim_steps"],
        ddim_eta=meta["ddim_eta"],
        scale=meta["scale"],
        classifier_lambda=sampler["classifier_lambda"],
        dist_lambda=sampler["dist_lambda"],
        deg_cone_projection=sampler["deg_cone_projection"],
        lp_custom=sampler["lp_custom"],
        guidance=sampler["guidance"],
        cone_projection_type=sampler["cone_projection_type"],
        enforce_same_norms=sampler["enforce_same_norms"],
    )
