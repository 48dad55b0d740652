"""The hyperparameters of LDCE, named as in the original project's commands, declared once.

Each field's type is its rule: LightningCLI rejects a bad value at parse time naming the field, and
``LDCEConfig(...)`` raises the same ``ValueError`` for Python callers (``ldce.checks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    restricted_number_type,
)

from ldce.checks import check_fields
from ldce.method.consensus import ConeProjection
from ldce.method.halves import Halves

Guidance = Literal["projected", "unprojected", "free"]
Distance = Literal[1, 2, "dino_cossim", "dino_1", "dino_2"]
Degrees = restricted_number_type("Degrees", float, [(">", 0), ("<=", 180)], join="and")


@dataclass(frozen=True)
class LDCEConfig:
    """Everything that decides what a counterfactual looks like (the original's option names).

    Args:
        strength: share of the DDIM grid to noise to, ``n = ⌊strength · ddim_steps⌋``, in [0, 1].
        ddim_steps: ``S``, points of the uniform DDIM grid over the ``T`` training steps.
        ddim_eta: ``η`` of DDIM (0: deterministic).
        scale: weight of the guidance in ``ê = e_u + scale · (λc·s_c − λd·s_d)``.
        classifier_lambda: ``λc`` (``sampler.classifier_lambda``), the classifier score's norm relative to ``|d|``.
        dist_lambda: ``λd`` (``sampler.dist_lambda``), the distance score's norm relative to ``|d|``.
        deg_cone_projection: ``θmax`` in degrees, in (0, 180]: the consensus cone's half angle.
        lp_custom: the distance term's measure: 1 (L1) or 2 (squared L2) between pixels, or, as the
            original's ``dino_<loss>``, between the features of ``model.distance_features`` (the
            original: DINO ViT-B/16): ``dino_cossim`` (1 − cosine similarity), ``dino_1`` (mean absolute
            difference) or ``dino_2`` (mean squared difference); see ``ldce.method.terms.feature_distance``.
        guidance: ``projected`` (consensus guidance), ``unprojected`` (the raw classifier score,
            no consensus: an ablation) or ``free`` (classifier-free guidance only, no classifier).
        cone_projection_type: ``zero_binning``, ``binning`` or ``default`` (see ``ldce.method.consensus``).
        consensus_chunk_size: side of the square block of latent pixels compared as one vector.
        enforce_same_norms: rescale both scores to ``λ · |d|`` per sample.
        batched_vjp: compute the gradients of all guidance terms in one batched backward pass
            (``vmap`` over the vector–Jacobian product) instead of one each; changes no result, only speed.
        backprop_noise_model: carry the guidance gradients through the noise model (the original's
            ``backprop_diffusion``). False: ``e_u`` is held constant, so ``∂L/∂z = (1/√a)·∂L/∂ẑ0`` — only
            the decoder's and the loss's Jacobians — cheaper, and a different direction.
        self_recurrence: after each guided step, this many further DDIM updates at the same grid index
            with the conditional noise ``e_c`` alone (no guidance, scale 1), as the original's
            ``self_recurrence``; 0: none (see ``ldce.method.recurrence``).
        self_recurrence_every_n_steps: apply them only at grid indices divisible by this (0: at every
            step). The original reads this option but never uses it (every step, as 0 here).
        guidance_every: ``k``: the classifier and distance scores are computed on every ``k``-th guided
            step only and reused in between (``ldce.method.fast``); 1 is LDCE as published.
        stop_after_flip: ``p`` in [0, 1]: once the classifier has given a sample's target a probability
            ``≥ p`` on ``x̂0`` for ``stop_after_flip_steps`` consecutive guided steps, its remaining steps
            run with classifier-free guidance only (``ldce.method.fast``); ``null`` (default) never stops.
        stop_after_flip_steps: ``m`` ≥ 1, the consecutive steps of ``stop_after_flip``.
        halves: compute ``e_c`` and ``e_u`` as two noise-model calls on ``B`` latents (``separate``) or
            as one on ``2B`` (``joint``: every backward then runs on ``2B``; no faster on CPU eagerly for
            any latent size measured, 2–3 % faster compiled with ``stacked_noise_vjp`` on the tiny
            model); changes no result beyond round-off, only speed (``ldce.method.halves``).
        stacked_noise_vjp: carry the guidance terms' gradients back through the noise model in one
            backward pass over stacked copies of ``z``, one copy per term that needs a gradient (two for
            LDCE: classifier and distance; ``e_u`` is then computed on ``2B`` latents), instead of one
            pass each; through the decoder they stay one pass each (``batched_vjp`` batches those).
            No effect with ``backprop_noise_model: false`` (no pass through the noise model) or with
            one such term. Moves each step by float round-off only, which a guided run can amplify
            into a different decision for a few inputs (``ldce.method.guided``). Pays where a
            noise-model call costs about the same at ``B`` and ``2B``: on CPU 2–3 % off a step on the
            tiny and demo latents (3×8×8, 4×8×8), 6 % slower on the mid model's 3×16×16.
    """

    strength: ClosedUnitInterval = 0.382
    ddim_steps: PositiveInt = 500
    ddim_eta: NonNegativeFloat = 0.0
    scale: NonNegativeFloat = 3.0
    classifier_lambda: NonNegativeFloat = 2.3
    dist_lambda: NonNegativeFloat = 0.3
    deg_cone_projection: Degrees = 45.0
    lp_custom: Distance = 1
    guidance: Guidance = "projected"
    cone_projection_type: ConeProjection = "zero_binning"
    consensus_chunk_size: PositiveInt = 1
    enforce_same_norms: bool = True
    batched_vjp: bool = False
    backprop_noise_model: bool = True
    self_recurrence: NonNegativeInt = 0
    self_recurrence_every_n_steps: NonNegativeInt = 0
    guidance_every: PositiveInt = 1
    stop_after_flip: ClosedUnitInterval | None = None
    stop_after_flip_steps: PositiveInt = 3
    halves: Halves = "separate"
    stacked_noise_vjp: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
