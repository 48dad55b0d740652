"""Inception FID from a local weights file in torch-fidelity's format (random weights: the format, not the values)."""

from __future__ import annotations

import pytest
import torch
from torch_fidelity import feature_extractor_inceptionv3 as fidelity

from ldce.metrics import FID
from ldce.metrics.features import INCEPTION_FEATURES, InceptionFeatures


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A state dict with the exact keys and shapes of torch-fidelity's Inception-v3 (randomly initialised)."""
    path = tmp_path_factory.mktemp("inception") / "weights-inception-random.pth"
    original = fidelity.FeatureExtractorInceptionV3.load_state_dict
    fidelity.FeatureExtractorInceptionV3.load_state_dict = lambda self, state: None
    try:
        torch.manual_seed(0)
        torch.save({}, path)
        network = fidelity.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        )
    finally:
        fidelity.FeatureExtractorInceptionV3.load_state_dict = original
    torch.save(network.state_dict(), path)
    return path


def test_inception_features_load_the_local_file_and_give_2048_dimensions(weights):
    extractor = InceptionFeatures(str(weights))
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = extractor(images)
    assert features.shape == (3, INCEPTION_FEATURES) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])


def test_inception_fid_of_a_set_with_itself_is_zero_and_of_another_set_positive(weights):
    extractor = InceptionFeatures(str(weights))
    generator = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 3, 32, 32, generator=generator), torch.rand(4, 3, 32, 32, generator=generator).mul(0.3)
    same, other = FID(INCEPTION_FEATURES), FID(INCEPTION_FEATURES)
    same.update(extractor(a), extractor(a))
    other.update(extractor(a), extractor(b))
    distinct = float(other.compute())
    assert distinct > 0 and abs(float(same.compute())) < 1e-6 * distinct, (
        "random weights: tiny features, so compare relatively"
    )


def test_a_missing_inception_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        InceptionFeatures(str(tmp_path / "nothere.pth"))
