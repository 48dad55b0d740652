"""Properties of the differentiable classifier wrapper, the logit helpers and the offline loaders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from ldce.classifiers import (
    ClassifierWrapper,
    Preprocess,
    Preprocessing,
    confidence,
    is_binary,
    predict,
    target_log_likelihood,
    target_probability,
)

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


class TinyNet(nn.Module):
    """Conv + BatchNorm + Dropout + linear head: enough to see train/eval differences."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))


def images(batch: int = 2, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_gradients_reach_input_image_through_resize_crop_normalise() -> None:
    """d logits / d x exists, is finite and non-zero, while the classifier's parameters get no grad."""
    torch.manual_seed(0)
    wrapper = ClassifierWrapper(TinyNet(), Preprocessing(resize=40, crop=32, mean=MEAN, std=STD))
    x = images().requires_grad_(True)
    wrapper(x).logsumexp(dim=-1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in wrapper.parameters())


@pytest.mark.parametrize(("height", "width"), [(48, 64), (64, 48), (50, 50), (45, 55)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_preprocess_matches_torchvision_resize_crop_normalize(height: int, width: int, interpolation: str) -> None:
    """Preprocess == torchvision resize(shorter side, antialias=False) → center_crop → normalize."""
    x = images(height=height, width=width)
    ours = Preprocess(Preprocessing(resize=40, crop=32, mean=MEAN, std=STD, interpolation=interpolation))(x)
    mode = getattr(TF.InterpolationMode, interpolation.upper())
    theirs = TF.normalize(TF.center_crop(TF.resize(x, [40], interpolation=mode, antialias=False), [32]), MEAN, STD)
    assert ours.shape == theirs.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_centre_crop_rounds_odd_margins_like_torchvision() -> None:
    """Crop offsets are int(round(margin / 2)), as torchvision's center_crop (margins 13 and 23 here)."""
    x = images(height=45, width=55)
    torch.testing.assert_close(Preprocess(Preprocessing(crop=32))(x), TF.center_crop(x, [32]), rtol=0, atol=0)


def test_preprocess_grayscale_uses_luminance_weights_and_one_channel() -> None:
    """channels="grayscale" gives 0.299 R + 0.587 G + 0.114 B, normalised with one-channel mean/std."""
    x = images()
    ours = Preprocess(Preprocessing(mean=(0.5,), std=(0.25,), channels="grayscale"))(x)
    luma = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    torch.testing.assert_close(ours, (luma - 0.5) / 0.25)
    torch.testing.assert_close(ours * 0.25 + 0.5, TF.rgb_to_grayscale(x), atol=1e-3, rtol=0)


def test_preprocess_without_arguments_is_identity() -> None:
    """All steps None: the input passes unchanged."""
    x = images()
    assert torch.equal(Preprocess()(x), x)


def test_wrapper_stays_in_eval_after_train_call() -> None:
    """.train() (as a Lightning trainer would call it) leaves BatchNorm/Dropout in eval: outputs are deterministic."""
    torch.manual_seed(0)
    wrapper = ClassifierWrapper(TinyNet())
    returned = wrapper.train()
    assert returned is wrapper
    assert not any(module.training for module in wrapper.modules())
    x = images()
    torch.testing.assert_close(wrapper(x), wrapper(x), rtol=0, atol=0)
    wrapper.model.train(False)
    torch.testing.assert_close(wrapper(x), wrapper.model(x))


def test_parameters_are_frozen() -> None:
    """All inner parameters have requires_grad False after wrapping."""
    wrapper = ClassifierWrapper(TinyNet())
    assert all(not p.requires_grad for p in wrapper.parameters())


def test_binary_index_selects_that_logit_of_a_multi_logit_head() -> None:
    """binary_index=i returns logits[:, i] with shape (B,)."""
    torch.manual_seed(0)
    model = TinyNet(num_classes=3)
    x = images(batch=4)
    full = ClassifierWrapper(model)(x)
    for index in range(3):
        picked = ClassifierWrapper(model, binary_index=index)(x)
        assert picked.shape == (4,) and is_binary(picked)
        torch.testing.assert_close(picked, full[:, index], rtol=0, atol=0)
    assert not is_binary(full)


def test_target_log_likelihood_multiclass_is_log_softmax_at_target_and_per_sample() -> None:
    """Multi-class: log_softmax(logits)[b, y_b]; a sample's value does not depend on the rest of the batch."""
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)) * 3
    targets = torch.tensor([0, 6, 3, 3, 2])
    value = target_log_likelihood(logits, targets)
    expected = torch.stack([F.log_softmax(logits[b], dim=-1)[targets[b]] for b in range(5)])
    torch.testing.assert_close(value, expected)
    alone = torch.cat([target_log_likelihood(logits[b : b + 1], targets[b : b + 1]) for b in range(5)])
    torch.testing.assert_close(value, alone)


def test_target_log_likelihood_binary_is_minus_bce_per_sample() -> None:
    """Binary: -BCEWithLogits(l_b, y_b) = log σ(±l_b) per sample, independent of the rest of the batch."""
    logits = torch.tensor([-4.0, -0.5, 0.0, 0.7, 30.0])
    targets = torch.tensor([1, 0, 1, 1, 0])
    value = target_log_likelihood(logits, targets)
    expected = torch.stack([-F.binary_cross_entropy_with_logits(logits[b], targets[b].float()) for b in range(5)])
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(value, F.logsigmoid(torch.where(targets.bool(), logits, -logits)))
    alone = torch.cat([target_log_likelihood(logits[b : b + 1], targets[b : b + 1]) for b in range(5)])
    torch.testing.assert_close(value, alone)


def test_target_probability_matches_softmax_and_sigmoid() -> None:
    """p(y_t): softmax at the target (multi-class), σ(l) for target 1 and 1 − σ(l) for target 0 (binary)."""
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([4, 0, 2, 2])
    torch.testing.assert_close(target_probability(logits, targets), logits.softmax(-1)[torch.arange(4), targets])
    torch.testing.assert_close(target_probability(logits, targets).log(), target_log_likelihood(logits, targets))
    binary = torch.tensor([-2.0, 0.3, 1.5, -0.1])
    bits = torch.tensor([1, 0, 1, 0])
    expected = torch.where(bits.bool(), binary.sigmoid(), 1 - binary.sigmoid())
    torch.testing.assert_close(target_probability(binary, bits), expected)


def test_predict_and_confidence_give_the_predicted_class_and_its_probability() -> None:
    """predict = argmax / (logit > 0); confidence = max softmax / σ(|logit|)."""
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    assert predict(logits).tolist() == [1, 0]
    torch.testing.assert_close(confidence(logits), logits.softmax(-1).max(-1).values)
    binary = torch.tensor([-2.0, 0.5])
    assert predict(binary).tolist() == [0, 1]
    torch.testing.assert_close(confidence(binary), binary.abs().sigmoid())
