"""``MetricsConfig`` (the ``metrics`` config group) and ``build_suite``: what a run or ``ldce evaluate`` computes.

A metric whose network cannot be loaded is reported — named, with its config key and the reason —
in ``MetricSuite.errors`` and the log; every other metric is still computed.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor, nn
from torchmetrics import Metric

from ldce.classifiers.features import simsiam_resnet50
from ldce.metrics.attributes import CD, MNAC, read_attribute_labels, read_correlations, train_correlations
from ldce.metrics.cout import COUT
from ldce.metrics.features import InceptionFeatures, feature_dimension
from ldce.metrics.frechet import FID, SplitFID
from ldce.metrics.lpips import LPIPS, LpipsNet
from ldce.metrics.networks import celebahq_oracle, vggface2_embedder
from ldce.metrics.pairs import Closeness, CosineSimilarity, FlipRate
from ldce.metrics.suite import Feed, MetricSuite, Outputs

log = logging.getLogger(__name__)

CLASSIFIER_KEY = "model.classifier"


@dataclass
class MetricsConfig:
    """Counterfactual metrics beyond flip rate and closeness (always computed); files are local paths.

    Args:
        cout: COUT with the explained classifier (one classifier call per batch and reveal step, about 51 steps).
        fid_features: a module from [0, 1] images ``(B, 3, H, W)`` to features ``(B, D)`` with a
            ``num_features`` attribute (e.g. ``ldce.metrics.features.PenultimateFeatures`` around a judge
            classifier): FID and sFID in its feature space, named ``fid_<fid_features_name>``.
        fid_features_name: the feature space's name in the metric names (not ``inception``).
        fid_inception_weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``: ``fid_inception``
            and ``sfid_inception`` (needs the torch-fidelity package).
        sfid: also compute sFID for each FID (keeps every pair's features: 8·D bytes per pair).
        lpips_weights: the torchvision backbone file for ``lpips`` (e.g. ``alexnet-owt-7be5be79.pth``).
        lpips_net: LPIPS backbone: alex, vgg or squeeze.
        simsiam_weights: SimSiam's ResNet-50 checkpoint (``checkpoint_0099.pth.tar``) for ``s3``.
        face_weights: VGGFace2 ``resnet50_ft_weight.pkl`` for ``fva`` and ``fs``.
        oracle_weights: the STEEX/ACE CelebA-HQ attribute oracle ``checkpoint.tar`` for ``mnac`` and ``cd``.
        query_attribute: index of the explained attribute among the oracle's 40 (MNAC leaves it out, or counts
            all 40 when unset; CD needs it).
        attribute_correlations: JSON list of the 40 training-label correlations with the queried attribute:
            with ``oracle_weights``, ``cd`` is computed.
        attribute_labels: a CelebA attribute file of the training split, to compute those correlations instead.
    """

    cout: bool = True
    fid_features: nn.Module | None = None
    fid_features_name: str = "features"
    fid_inception_weights: str | None = None
    sfid: bool = True
    lpips_weights: str | None = None
    lpips_net: LpipsNet = "alex"
    simsiam_weights: str | None = None
    face_weights: str | None = None
    oracle_weights: str | None = None
    query_attribute: int | None = None
    attribute_correlations: str | None = None
    attribute_labels: str | None = None


class MetricUnavailable(Exception):
    """A configured metric that cannot be computed; the message names the metric and its config key."""

    def __init__(self, metric: str, key: str, reason: str) -> None:
        super().__init__(f"metric {metric} not computed: {reason} (config key {key})")
        self.metric = metric


@contextmanager
def loading(metric: str, key: str) -> Iterator[None]:
    """Turn a failure to load ``metric``'s network or file into :class:`MetricUnavailable`."""
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, ModuleNotFoundError, pickle.UnpicklingError) as error:
        raise MetricUnavailable(metric, key, str(error)) from error


@dataclass
class Build:
    """What the builders share: the config, the explained classifier and what has been built so far."""

    config: MetricsConfig
    classifier: nn.Module | None
    prefix: str
    models: dict[str, nn.Module] = field(default_factory=dict)
    metrics: dict[str, tuple[Metric, Feed]] = field(default_factory=dict)


def images(outputs: Outputs) -> tuple[Tensor, Tensor]:
    """Feed: the pairs' images ``(B, 3, H, W)``."""
    return outputs.pairs.original, outputs.pairs.counterfactual


def judged_by(model: str) -> Feed:
    """Feed: ``models[model]`` applied to the originals and to the counterfactuals."""
    return lambda outputs: outputs.of(model)


def _closeness(build: Build) -> None:
    for norm in (1, 2):
        for per in ("image", "pixel"):
            build.metrics[f"l{norm}_per_{per}"] = (Closeness(norm, per), images)


def _classifier_metrics(build: Build) -> None:
    if build.classifier is None:
        raise MetricUnavailable("flip_rate, cout", CLASSIFIER_KEY, "no explained classifier")
    build.models["classifier"] = build.classifier
    build.metrics["flip_rate"] = (FlipRate(), lambda o: (*o.of("classifier"), o.pairs.target))
    if build.config.cout:
        build.metrics["cout"] = (COUT(build.classifier), lambda o: (*images(o), o.pairs.source, o.pairs.target))


def _add_fid(build: Build, name: str, extractor: nn.Module) -> None:
    """``fid_<name>`` (and ``sfid_<name>``) with features ``models["features_<name>"]``."""
    model, dimension = f"features_{name}", feature_dimension(extractor)
    build.models[model] = extractor
    build.metrics[f"fid_{name}"] = (FID(dimension), judged_by(model))
    if build.config.sfid:
        build.metrics[f"sfid_{name}"] = (SplitFID(dimension), lambda o: (*o.of(model), o.pairs.source, o.pairs.keys))


def _fid_features(build: Build) -> None:
    config = build.config
    if config.fid_features is None:
        return
    metric, key = f"fid_{config.fid_features_name}", build.prefix + "fid_features"
    if config.fid_features_name == "inception":
        raise MetricUnavailable(
            metric, build.prefix + "fid_features_name", "'inception' names torch-fidelity's Inception only"
        )
    with loading(metric, key):
        _add_fid(build, config.fid_features_name, config.fid_features)


def _fid_inception(build: Build) -> None:
    if build.config.fid_inception_weights is not None:
        with loading("fid_inception", build.prefix + "fid_inception_weights"):
            _add_fid(build, "inception", InceptionFeatures(build.config.fid_inception_weights))


def _lpips(build: Build) -> None:
    if build.config.lpips_weights is not None:
        with loading("lpips", build.prefix + "lpips_weights"):
            build.metrics["lpips"] = (LPIPS(build.config.lpips_weights, build.config.lpips_net), images)


def _simsiam(build: Build) -> None:
    if build.config.simsiam_weights is not None:
        with loading("s3", build.prefix + "simsiam_weights"):
            build.models["simsiam"] = simsiam_resnet50(build.config.simsiam_weights)
        build.metrics["s3"] = (CosineSimilarity(), judged_by("simsiam"))


def _faces(build: Build) -> None:
    if build.config.face_weights is not None:
        with loading("fva, fs", build.prefix + "face_weights"):
            build.models["face"] = vggface2_embedder(build.config.face_weights)
        build.metrics["fva"] = (CosineSimilarity(threshold=0.5), judged_by("face"))
        build.metrics["fs"] = (CosineSimilarity(), judged_by("face"))


def _oracle(build: Build) -> None:
    if build.config.oracle_weights is not None:
        with loading("mnac, cd", build.prefix + "oracle_weights"):
            build.models["oracle"] = celebahq_oracle(build.config.oracle_weights)
        build.metrics["mnac"] = (MNAC(build.config.query_attribute), judged_by("oracle"))


def _correlation_difference(build: Build) -> None:
    config, prefix = build.config, build.prefix
    if "oracle" not in build.models or (config.attribute_correlations is None and config.attribute_labels is None):
        return
    if config.query_attribute is None:
        raise MetricUnavailable("cd", prefix + "query_attribute", "CD needs the index of the queried attribute")
    if config.attribute_correlations is not None:
        with loading("cd", prefix + "attribute_correlations"):
            correlations = read_correlations(config.attribute_correlations)
    else:
        with loading("cd", prefix + "attribute_labels"):
            correlations = train_correlations(read_attribute_labels(config.attribute_labels), config.query_attribute)
    build.metrics["cd"] = (CD(config.query_attribute, correlations), judged_by("oracle"))


BUILDERS: tuple[Callable[[Build], None], ...] = (
    _classifier_metrics,
    _closeness,
    _fid_features,
    _fid_inception,
    _lpips,
    _simsiam,
    _faces,
    _oracle,
    _correlation_difference,
)


def build_suite(config: MetricsConfig | None, classifier: nn.Module | None, prefix: str = "metrics.") -> MetricSuite:
    """The metrics ``config`` asks for; ``classifier`` is the explained one (flip rate, COUT).

    ``prefix`` is where the config group sits (``summary.metrics.`` in ``ldce predict``), for messages.
    """
    build = Build(config or MetricsConfig(), classifier, prefix)
    errors: dict[str, str] = {}
    for builder in BUILDERS:
        try:
            builder(build)
        except MetricUnavailable as error:
            log.error("%s", error)
            errors[error.metric] = str(error)
    log.info("metrics: %s", ", ".join(build.metrics))
    return MetricSuite(build.models, build.metrics, errors)
