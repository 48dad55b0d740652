"""The classifier to be explained: the differentiable wrapper, logit helpers and loaders.

``classifier`` builds one from local files (a timm or torchvision name, a TorchScript file or a class path);
the paper's own classifiers are in ``ldce.classifiers.paper`` and ``ldce.classifiers.zero_shot``;
feature extractors (for targets and metrics) in ``ldce.classifiers.features``.
"""

from ldce.classifiers.loaders import classifier, import_class
from ldce.classifiers.logits import confidence, is_binary, predict, target_log_likelihood, target_probability
from ldce.classifiers.names import class_name, read_class_names
from ldce.classifiers.wrapper import (
    IMAGENET_MEAN,
    IMAGENET_PREPROCESSING,
    IMAGENET_STD,
    ClassifierWrapper,
    Preprocess,
    Preprocessing,
    rescale_warning,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_PREPROCESSING",
    "IMAGENET_STD",
    "ClassifierWrapper",
    "Preprocess",
    "Preprocessing",
    "class_name",
    "classifier",
    "confidence",
    "import_class",
    "is_binary",
    "predict",
    "read_class_names",
    "rescale_warning",
    "target_log_likelihood",
    "target_probability",
]
