"""The classifier to be explained: the differentiable wrapper, logit helpers and loaders.

``timm_classifier``, ``torchvision_classifier`` and ``module_classifier`` build one from local files;
the paper's own classifiers are in ``ldce.classifiers.paper`` and ``ldce.classifiers.zero_shot``;
feature extractors (for targets and metrics) in ``ldce.classifiers.features``.
"""

from ldce.classifiers.loaders import import_class, module_classifier, timm_classifier, torchvision_classifier
from ldce.classifiers.logits import confidence, is_binary, predict, target_log_likelihood, target_probability
from ldce.classifiers.names import class_name, read_class_names
from ldce.classifiers.wrapper import (
    IMAGENET_MEAN,
    IMAGENET_PREPROCESSING,
    IMAGENET_STD,
    ClassifierWrapper,
    Preprocess,
    Preprocessing,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_PREPROCESSING",
    "IMAGENET_STD",
    "ClassifierWrapper",
    "Preprocess",
    "Preprocessing",
    "class_name",
    "confidence",
    "import_class",
    "is_binary",
    "module_classifier",
    "predict",
    "read_class_names",
    "target_log_likelihood",
    "target_probability",
    "timm_classifier",
    "torchvision_classifier",
]
