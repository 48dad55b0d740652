"""Counterfactual metrics as torchmetrics ``Metric`` objects, synced across ranks, exact for any world size.

A pair is an original ``x`` and its counterfactual ``x'`` (``(3, H, W)`` in [0, 1]) with its source
class (the label) and its target. ``ldce predict`` computes them on every run (``summary.json``,
section ``evaluation``, and W&B) and ``ldce evaluate --results <output_dir>`` recomputes them from
the saved files (``metrics.json``). Both see the images as the writer saves them, 8-bit
(:func:`ldce.images.quantise`), so the two agree up to float round-off of the batch layout.

===============  ===============================================================  ================================
name             definition                                                       needs
===============  ===============================================================  ================================
flip_rate        ``(1/N) Σ [ŷ(x') = t]``; binary: ``[logit > 0] = t``              explained classifier
l1/l2_per_image  ``Σ|Δ|``, ``√ΣΔ²`` with ``Δ = x' − x``, mean over pairs           —
l1/l2_per_pixel  ``Σ|Δ| / (CHW)``, ``√ΣΔ² / √(CHW)``, mean over pairs              —
cout             ``AUC(p_t) − AUC(p_s)`` while revealing ``x'`` in ``x`` (cout.py)  explained classifier
fid_<space>      Fréchet distance of all originals vs all counterfactuals          ``fid_features`` / ``…inception…``
sfid_<space>     ``½[FID(x_A, x'_B) + FID(x_B, x'_A)]``, class-balanced halves      as FID
lpips            mean LPIPS(x, x')                                                 ``lpips_weights``
s3               mean cosine of SimSiam projector embeddings                       ``simsiam_weights``
fva, fs          share of face-embedding cosines > 0.5; their mean                 ``face_weights``
mnac             mean number of oracle attribute decisions that flip, query out    ``oracle_weights``
cd               ``Σ_a |ρ_train(a, q) − corr(δ_a, δ_q)|``                           ``oracle_weights`` + correlations
===============  ===============================================================  ================================

``fid_features`` FID is in the given network's feature space and is named after it
(``fid_<fid_features_name>``), never ``fid_inception``. File formats: :mod:`ldce.metrics.networks`,
:mod:`ldce.metrics.lpips`, :mod:`ldce.metrics.features`; the config group: :class:`MetricsConfig`.
"""

from ldce.metrics.attributes import CD, MNAC
from ldce.metrics.config import MetricsConfig, MetricUnavailable, build_suite
from ldce.metrics.cout import COUT
from ldce.metrics.frechet import FID, SplitFID
from ldce.metrics.lpips import LPIPS
from ldce.metrics.pairs import Closeness, CosineSimilarity, FlipRate
from ldce.metrics.suite import MetricSuite, Pairs

__all__ = [
    "CD",
    "COUT",
    "FID",
    "LPIPS",
    "MNAC",
    "Closeness",
    "CosineSimilarity",
    "FlipRate",
    "MetricSuite",
    "MetricUnavailable",
    "MetricsConfig",
    "Pairs",
    "SplitFID",
    "build_suite",
]
