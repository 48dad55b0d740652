"""``LDCEPipeline``: every accepted input type gives the same counterfactual, every output type shows the
same one, and each bad input is refused with a message naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ldce import demo
from ldce.method import LDCEConfig
from ldce.pipeline import LDCEPipeline

COAT = demo.CLASS_NAMES.index("Coat")


@pytest.fixture(scope="module")
def pipe() -> LDCEPipeline:
    """The demo models with a short schedule (10 steps, 5 guided)."""
    config = LDCEConfig(strength=0.5, ddim_steps=10, scale=3.0, classifier_lambda=2.3, dist_lambda=0.3)
    return LDCEPipeline(demo.backbone(), demo.classifier(), config, list(demo.CLASS_NAMES))


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """The first demo image as uint8 ``(32, 32, 3)``."""
    _, images, _, _ = next(demo.demo_batches(1))
    return (images[0].permute(1, 2, 0) * 255).round().byte().numpy()


def test_from_config_runs_a_packaged_config_from_any_directory(tmp_path, monkeypatch, picture):
    monkeypatch.chdir(tmp_path)
    out = LDCEPipeline.from_config("quickstart")(Image.fromarray(picture), "Coat")
    assert out.targets == [COAT] and len(out.images) == 1 and out.images[0].size == (32, 32)
    assert out.flipped == [out.predictions[0] == COAT] and 0 <= out.target_probabilities[0] <= 1


def test_every_input_type_gives_the_same_counterfactual(pipe, picture):
    as_float = picture.astype(np.float32) / 255
    inputs = {
        "PIL image": Image.fromarray(picture),
        "uint8 array": picture,
        "float array batch": as_float[None],
        "uint8 tensor": torch.from_numpy(picture).permute(2, 0, 1),
        "float tensor batch": torch.from_numpy(as_float).permute(2, 0, 1)[None],
        "list of tensors": [torch.from_numpy(as_float).permute(2, 0, 1)],
    }
    results = {name: pipe(value, COAT, output_type="pt").images for name, value in inputs.items()}
    reference = results.pop("PIL image")
    assert reference.shape == (1, 3, 32, 32)
    for name, images in results.items():
        assert torch.equal(images, reference), name


def test_targets_by_index_name_list_or_tensor_are_the_same_classes(pipe, picture):
    images = [picture, picture]
    forms = [COAT, "Coat", ["coat", COAT], torch.tensor([COAT, COAT])]
    assert all(pipe(images, form, output_type="pt").targets == [COAT, COAT] for form in forms)


def test_output_types_show_the_same_counterfactuals(pipe, picture):
    pt = pipe([picture, picture], [COAT, "Sneaker"], output_type="pt", seed=3)
    np_out = pipe([picture, picture], [COAT, "Sneaker"], output_type="np", seed=3)
    pil = pipe([picture, picture], [COAT, "Sneaker"], output_type="pil", seed=3)
    assert pt.images.dtype == torch.float32 and 0 <= pt.images.min() and pt.images.max() <= 1
    assert np.array_equal(np_out.images, pt.images.permute(0, 2, 3, 1).numpy())
    eight_bit = (pt.images.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    assert all(np.array_equal(np.asarray(image), pixels) for image, pixels in zip(pil.images, eight_bit, strict=True))
    assert pt.flipped == [p == t for p, t in zip(pt.predictions, pt.targets, strict=True)]


@pytest.mark.parametrize(
    ("images", "targets", "message"),
    [
        ("photo.png", COAT, "images must be PIL images, arrays or tensors"),
        ([], COAT, "images must be PIL images, arrays or tensors"),
        (torch.rand(1, 3, 64, 64), COAT, "images are 64×64, but the backbone works on 32×32"),
        (torch.rand(1, 3, 32, 32) * 255, COAT, "images must lie in [0, 1], got [0"),
        (torch.rand(1, 3, 32, 32) * 2 - 1, COAT, "map [-1, 1] to [0, 1] with (x + 1) / 2"),
        (torch.full((1, 3, 32, 32), float("nan")), COAT, "images contain NaN"),
        (torch.rand(1, 1, 32, 32), COAT, "images must have 3 channels"),
        (np.zeros((32, 32), np.uint8), COAT, "image arrays must be (H, W, 3) or (B, H, W, 3)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.int32), COAT, "images must be float in [0, 1] or uint8"),
        (torch.rand(1, 3, 32, 32), "Cot", "targets: 'Cot' is not a class index or one of the 10 class names; did"),
        (torch.rand(1, 3, 32, 32), 12, "targets: 12 is outside the 10 classes"),
        (torch.rand(1, 3, 32, 32), [1, 2], "targets: give one class for every image or one per image (1), got 2"),
        (torch.rand(1, 3, 32, 32), 2.5, "targets: give one class"),
        (torch.rand(1, 3, 32, 32), torch.tensor([0.5]), "targets must be class indices"),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else None,
)
def test_bad_inputs_are_refused_naming_the_argument(pipe, images, targets, message):
    with pytest.raises(ValueError) as error:
        pipe(images, targets)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"output_type": "jpg"}, "output_type must be 'pil', 'pt' or 'np'"), ({"seed": 1.5}, "seed must be an int")],
)
def test_bad_options_are_refused_naming_them(pipe, picture, options, message):
    with pytest.raises(ValueError, match=message):
        pipe(picture, COAT, **options)


def test_an_unknown_config_names_the_configs_that_ship(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'quickstrat' is neither a file nor .*quickstart"):
        LDCEPipeline.from_config("quickstrat")


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"classifier": "resnet.pth"}, "classifier must be a Module, got str"),
        ({"distance_features": "vit.pth"}, "distance_features must be a Module or None, got str"),
        ({"segmenter": 3}, "segmenter must be a Module or None, got int"),
    ],
)
def test_models_given_as_anything_but_modules_are_refused_naming_the_argument(argument, message):
    models = {"backbone": demo.backbone(), "classifier": demo.classifier()}
    with pytest.raises(ValueError, match=message):
        LDCEPipeline(**(models | argument))
