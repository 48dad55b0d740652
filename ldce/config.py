"""The hyperparameters of LDCE, named as in the original project's commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ldce.consensus import CONE_PROJECTIONS, ConeProjection

Guidance = Literal["projected", "unprojected", "free"]
GUIDANCES: tuple[str, ...] = get_args(Guidance)


@dataclass(frozen=True)
class LDCEConfig:
    """Everything that decides what a counterfactual looks like, validated on construction.

    Attributes:
        strength: share of the DDIM grid to noise to, ``n = ⌊strength · ddim_steps⌋``, in [0, 1].
        ddim_steps: ``S``, points of the uniform DDIM grid over the ``T`` training steps.
        ddim_eta: ``η`` of DDIM (0: deterministic).
        scale: weight of the guidance in ``ê = e_u + scale · (s_c − s_d)``.
        classifier_lambda: ``λc``, the classifier score's norm relative to ``|d|``.
        dist_lambda: ``λd``, the distance score's norm relative to ``|d|``.
        deg_cone_projection: ``θmax`` in degrees, in (0, 180].
        lp_custom: ``p`` of the distance term, 1 (L1) or 2 (squared L2).
        guidance: ``projected`` (consensus guidance), ``unprojected`` (the raw classifier score,
            no consensus: an ablation) or ``free`` (classifier-free guidance only, no classifier).
        cone_projection_type: ``zero_binning``, ``binning`` or ``default`` (see ``consensus``).
        consensus_chunk_size: side of the block of latent pixels compared as one vector.
        enforce_same_norms: rescale both scores to ``λ · |d|`` per sample.
        batched_vjp: compute both gradients in one batched backward pass (``vmap`` over the
            vector–Jacobian product) instead of two; changes no result, only speed.
    """

    strength: float = 0.382
    ddim_steps: int = 500
    ddim_eta: float = 0.0
    scale: float = 3.0
    classifier_lambda: float = 2.3
    dist_lambda: float = 0.3
    deg_cone_projection: float = 45.0
    lp_custom: Literal[1, 2] = 1
    guidance: Guidance = "projected"
    cone_projection_type: ConeProjection = "zero_binning"
    consensus_chunk_size: int = 1
    enforce_same_norms: bool = True
    batched_vjp: bool = False

    def __post_init__(self) -> None:
        checks = {
            "strength": (0.0 <= self.strength <= 1.0, "must be in [0, 1]"),
            "ddim_steps": (self.ddim_steps >= 1, "must be ≥ 1"),
            "ddim_eta": (self.ddim_eta >= 0.0, "must be ≥ 0"),
            "scale": (self.scale >= 0.0, "must be ≥ 0"),
            "classifier_lambda": (self.classifier_lambda >= 0.0, "must be ≥ 0"),
            "dist_lambda": (self.dist_lambda >= 0.0, "must be ≥ 0"),
            "deg_cone_projection": (0.0 < self.deg_cone_projection <= 180.0, "must be in (0, 180]"),
            "lp_custom": (self.lp_custom in (1, 2), "must be 1 or 2"),
            "guidance": (self.guidance in GUIDANCES, f"must be one of {GUIDANCES}"),
            "cone_projection_type": (self.cone_projection_type in CONE_PROJECTIONS, f"must be one of {CONE_PROJECTIONS}"),
            "consensus_chunk_size": (self.consensus_chunk_size >= 1, "must be ≥ 1"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")
