"""The paper's classifiers from files in their original layouts (random weights), and their failures."""

from __future__ import annotations

import sys

import pytest
import timm
import torch
from paper_files import write_dino, write_linear_head, write_simsiam, write_steex, write_torchvision
from torch import nn

from ldce.classifiers import IMAGENET_MEAN, IMAGENET_STD, classifier
from ldce.classifiers.features import feature_extractor, simsiam_resnet50
from ldce.classifiers.paper import SteexDenseNet, dino_linear_classifier, load_linear_head, steex_densenet
from ldce.classifiers.zero_shot import (
    EXTRA,
    ZeroShotClassifier,
    open_clip_zero_shot,
    text_class_weights,
    zero_shot_prompts,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifiers")
    return {
        "steex": write_steex(folder / "celebamaskhq" / "checkpoint.tar"),
        "dino": write_dino(folder / "dino.pth"),
        "head": write_linear_head(folder / "head.pth"),
        "resnet": write_torchvision(folder / "resnet50.pth"),
    }


def test_steex_returns_the_queried_logit_of_its_densenet_on_images_scaled_to_minus1_1(files):
    """``binary_index`` 1 (smile) / 2 (young) picks that logit of STEEX's model applied to 2x − 1."""
    reference = SteexDenseNet()
    reference.load_state_dict(torch.load(files["steex"], weights_only=True)["model_state_dict"])
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference.eval()(2 * images - 1)
        for index in (1, 2):
            assert torch.allclose(steex_densenet(str(files["steex"]), index)(images), expected[:, index], atol=1e-5)


def test_dino_linear_is_the_class_token_of_the_centre_crop_through_the_head(files):
    """Original DINO keys load into ViT-S/8; logits = head(class token of the normalised 224 crop)."""
    classifier = dino_linear_classifier(str(files["dino"]), str(files["head"]))
    vit = timm.create_model("vit_small_patch8_224", num_classes=0)
    vit.load_state_dict(torch.load(files["dino"], weights_only=True))
    head = torch.load(files["head"], weights_only=True)
    images = torch.rand(1, 3, 256, 256)
    crop = (images[..., 16:240, 16:240] - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = vit.eval()(crop) @ head["linear.weight"].t() + head["linear.bias"]
        assert torch.allclose(classifier(images), expected, atol=1e-4)


def test_a_dino_eval_linear_checkpoint_is_read_with_its_key_and_prefix(tmp_path):
    """DINO's ``eval_linear.py`` saves ``{"state_dict": {"module.linear.*"}, …}``."""
    head = {"linear.weight": torch.randn(5, 384), "linear.bias": torch.randn(5)}
    torch.save(
        {"epoch": 100, "state_dict": {f"module.{k}": v for k, v in head.items()}, "best_acc": 0.9}, tmp_path / "h.pth"
    )
    loaded = load_linear_head(str(tmp_path / "h.pth"), 5, "state_dict", "module.")
    assert torch.equal(loaded.linear.weight, head["linear.weight"])


@pytest.mark.parametrize("damage", ["missing", "truncated", "other architecture"])
def test_unusable_classifier_files_fail_naming_the_file_and_the_expected_model(files, tmp_path, damage):
    """STEEX, DINO, the head and torchvision's ResNet-50: missing, truncated or foreign weights."""
    for name, load, expected in (
        ("steex", lambda p: steex_densenet(p, 1), "STEEX"),
        ("dino", lambda p: dino_linear_classifier(p, str(files["head"])), "DINO"),
        ("head", lambda p: dino_linear_classifier(str(files["dino"]), p), "linear head"),
        ("resnet", lambda p: classifier(torchvision="resnet50", checkpoint=p), "resnet50"),
    ):
        bad = tmp_path / f"{name}.bin"
        if damage == "truncated":
            bad.write_bytes(files[name].read_bytes()[:4096])
        elif damage == "other architecture":
            bad.write_bytes(files["resnet" if name != "resnet" else "steex"].read_bytes())
        error = FileNotFoundError if damage == "missing" else ValueError
        with pytest.raises(error, match=str(bad)) as raised:
            load(str(bad))
        if damage == "other architecture":
            assert expected in str(raised.value) or "model_state_dict" in str(raised.value)


def test_steex_binary_index_must_be_one_of_its_three_attributes(files):
    with pytest.raises(ValueError, match="binary_index"):
        steex_densenet(str(files["steex"]), 3)


def test_simsiam_features_are_the_encoder_output_and_the_predictor_is_ignored(tmp_path):
    """SimSiam's DDP checkpoint loads; features are 2048-d; a non-SimSiam file is refused."""
    path = write_simsiam(tmp_path / "checkpoint_0099.pth.tar")
    extractor = feature_extractor("simsiam", str(path))
    assert extractor(torch.rand(2, 3, 32, 32)).shape == (2, 2048)
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="module.encoder"):
        simsiam_resnet50(str(tmp_path / "other.pth"))


def test_zero_shot_prompts_follow_the_template_in_class_order():
    prompts = zero_shot_prompts(["abyssinian", "great pyrenees"], "a photo of a {}, a type of pet.")
    assert prompts == ["a photo of a abyssinian, a type of pet.", "a photo of a great pyrenees, a type of pet."]
    with pytest.raises(ValueError, match="template"):
        zero_shot_prompts(["a"], "no field")


def test_zero_shot_logits_are_100_times_cosine_similarity_to_the_class_prompts():
    """logits[b, k] = 100 · cos(image feature b, text feature k)."""
    torch.manual_seed(0)
    image_encoder, text_table = nn.Linear(12, 4, bias=False), torch.randn(3, 4)
    weights = text_class_weights(
        lambda tokens: text_table[tokens], lambda prompts: torch.arange(len(prompts)), ["p0", "p1", "p2"]
    )
    images = torch.randn(2, 12)
    logits = ZeroShotClassifier(image_encoder, weights)(images)
    expected = 100 * nn.functional.cosine_similarity(image_encoder(images)[:, None], text_table[None], dim=-1)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_without_open_clip_the_error_names_the_optional_extra(monkeypatch, files):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes ``import open_clip`` fail
    with pytest.raises(ImportError) as raised:
        open_clip_zero_shot(str(files["resnet"]), ["a", "b"])
    assert EXTRA in str(raised.value) and "ldce[openclip]" in str(raised.value)
