"""The one classifier entry: timm and torchvision names, TorchScript files and class paths, each with
weights from a local file, loaded strictly and offline, and the warning for a preprocessing that
resizes the images by more than 2×."""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from safetensors.torch import save_file
from test_classifiers import TinyNet, images
from timm.data import resolve_model_data_config
from torch import nn

from ldce.checkpoints import read_tensors
from ldce.classifiers import IMAGENET_MEAN, IMAGENET_STD, ClassifierWrapper, Preprocessing, classifier, rescale_warning
from ldce.classifiers.loaders import timm_preprocessing


def test_timm_loader_reproduces_the_saved_model_offline(tmp_path, no_network) -> None:
    """A random timm test_resnet saved as safetensors loads to identical logits, with timm's data config."""
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=5).eval()
    path = tmp_path / "test_resnet.safetensors"
    save_file(reference.state_dict(), path)
    wrapper = classifier(timm="test_resnet", checkpoint=str(path), num_classes=5)
    config = resolve_model_data_config(reference)
    size = config["input_size"][-1]
    x = images(height=size + 16, width=size + 32)
    mode = getattr(TF.InterpolationMode, config["interpolation"].upper())
    resized = TF.resize(x, [int(size / config["crop_pct"])], interpolation=mode, antialias=False)
    expected = reference(TF.normalize(TF.center_crop(resized, [size]), config["mean"], config["std"]))
    torch.testing.assert_close(wrapper(x), expected, rtol=1e-5, atol=1e-5)


def test_headless_timm_features_load_strictly(tmp_path, no_network) -> None:
    """With ``num_classes=0`` (a feature extractor) timm itself loads non-strictly; ldce refuses weights
    of another network instead of keeping random ones, and loads matching weights (head dropped)."""
    path = tmp_path / "test_resnet.safetensors"
    save_file(timm.create_model("test_resnet", pretrained=False, num_classes=5).state_dict(), path)
    assert classifier(timm="test_resnet", checkpoint=str(path), num_classes=0)(images()).shape[1] > 5
    with pytest.raises(ValueError, match="does not fit timm model 'test_vit': (Missing|Unexpected) keys"):
        classifier(timm="test_vit", checkpoint=str(path), num_classes=0)


def test_timm_reads_training_checkpoints_as_timm_does_without_key_or_prefix(tmp_path, no_network) -> None:
    """A torch checkpoint {"epoch", "state_dict": {"module." + key}} (what timm's train script saves) loads
    with timm's own reader; num_classes=0 drops the head (a feature extractor)."""
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=4).eval()
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 9, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    x = images(height=160, width=160)
    torch.testing.assert_close(
        classifier(timm="test_resnet", checkpoint=str(path), num_classes=4)(x), wrapped(reference, x)
    )
    features = classifier(timm="test_resnet", checkpoint=str(path), num_classes=0)
    reference.reset_classifier(0)
    torch.testing.assert_close(features(x), wrapped(reference, x))


def wrapped(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model`` behind its own timm data config."""
    return ClassifierWrapper(model, timm_preprocessing(model, "test_resnet"))(x)


def test_torchvision_loader_reproduces_resnet18_with_imagenet_preprocessing(tmp_path, no_network) -> None:
    """A random torchvision resnet18 saved as a torch file loads to identical logits (resize 256, crop 224)."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    wrapper = classifier(torchvision="resnet18", checkpoint=str(path), num_classes=10, binary_index=3)
    x = images(height=256, width=288)
    expected = reference(TF.normalize(TF.center_crop(x, [224]), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    torch.testing.assert_close(wrapper(x), expected[:, 3], rtol=1e-5, atol=1e-5)


def test_torchvision_loader_reads_legacy_densenet_keys(tmp_path) -> None:
    """torchvision's published DenseNet files name layers "norm.1" instead of "norm1": they load all the same."""
    torch.manual_seed(0)
    reference = torchvision.models.densenet121(num_classes=3).eval()
    legacy = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
    path = tmp_path / "densenet121.pth"
    torch.save({legacy.sub(r"\1.\2.", k): v for k, v in reference.state_dict().items()}, path)
    assert "features.denseblock1.denselayer1.norm.1.weight" in torch.load(path)
    imagenet = Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    wrapper = classifier(torchvision="densenet121", checkpoint=str(path), num_classes=3, preprocessing=imagenet)
    x = images(height=64, width=64)
    expected = reference(TF.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    torch.testing.assert_close(wrapper(x), expected, rtol=1e-5, atol=1e-5)


def test_class_path_loader_reads_a_nested_state_dict_with_prefix(tmp_path) -> None:
    """class_path imports by dotted path and loads {"model_state_dict": {"module." + key: ...}}."""
    torch.manual_seed(0)
    reference = TinyNet(num_classes=2, in_channels=1).eval()
    path = tmp_path / "checkpoint.pt"
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"epoch": 3, "model_state_dict": state}, path)
    wrapper = classifier(
        class_path=f"{__name__}.TinyNet",
        init_args={"num_classes": 2, "in_channels": 1},
        checkpoint=str(path),
        state_dict_key="model_state_dict",
        strip_prefix="module.",
        preprocessing=Preprocessing(channels="grayscale", mean=(0.5,), std=(0.5,)),
    )
    x = images()
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    torch.testing.assert_close(wrapper(x), reference((gray - 0.5) / 0.5))


def test_a_torchscript_file_is_the_network_and_its_weights(tmp_path) -> None:
    """torch.jit.save of a network loads to identical logits; a checkpoint beside it is refused."""
    torch.manual_seed(0)
    reference = TinyNet().eval()
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(reference), str(path))
    x = images()
    torch.testing.assert_close(classifier(torchscript=str(path))(x), reference(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="TorchScript file holds its weights"):
        classifier(torchscript=str(path), checkpoint=str(path))
    (tmp_path / "weights.pt").write_bytes(b"not TorchScript")
    with pytest.raises(ValueError, match="weights.pt: not a TorchScript file"):
        classifier(torchscript=str(tmp_path / "weights.pt"))


@pytest.mark.parametrize("sources", [{}, {"timm": "test_resnet", "torchvision": "resnet18"}], ids=["none", "two"])
def test_exactly_one_source_names_the_network(sources) -> None:
    with pytest.raises(ValueError, match="give exactly one of timm, torchvision, torchscript, class_path"):
        classifier(**sources)


def test_nested_file_without_key_names_the_file_and_asks_for_the_key(tmp_path) -> None:
    """A checkpoint dict read without state_dict_key is rejected with the file name, not loaded half-way."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model_state_dict": TinyNet().state_dict()}, path)
    with pytest.raises(ValueError, match=r"checkpoint.pt.*\['model_state_dict'\].*state_dict_key"):
        read_tensors(path, "classifier weights")
    with pytest.raises(ValueError, match="checkpoint.pt.*'state_dict'"):
        read_tensors(path, "classifier weights", key="state_dict")


@pytest.mark.parametrize(
    "source", [{"timm": "test_resnet"}, {"torchvision": "resnet18"}, {"class_path": f"{__name__}.TinyNet"}]
)
def test_missing_weights_file_raises_naming_the_file(tmp_path, source) -> None:
    """A missing file raises FileNotFoundError with its path, for every source."""
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        classifier(**source, checkpoint=str(tmp_path / "nowhere.safetensors"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("source", [{"timm": "test_resnet"}, {"class_path": f"{__name__}.TinyNet"}])
def test_truncated_weights_file_raises_naming_the_file(tmp_path, suffix: str, source) -> None:
    """A file cut in half raises ValueError with its path (safetensors and torch formats)."""
    path = tmp_path / f"cut{suffix}"
    state = (timm.create_model("test_resnet") if "timm" in source else TinyNet()).state_dict()
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"cut{suffix}"):
        classifier(**source, checkpoint=str(path))


def test_wrong_architecture_weights_raise_naming_the_mismatch(tmp_path) -> None:
    """Weights of another architecture or head size raise ValueError naming the file, keys and shapes."""
    path = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(
        ValueError, match=r"resnet18.safetensors: does not fit torchvision model 'resnet34'.*missing keys"
    ):
        classifier(torchvision="resnet34", checkpoint=str(path), num_classes=10)
    with pytest.raises(ValueError, match=r"shape mismatches.*fc.weight: file \(10, 512\) vs model \(7, 512\)"):
        classifier(torchvision="resnet18", checkpoint=str(path), num_classes=7)
    with pytest.raises(ValueError, match=r"resnet18.safetensors: does not fit timm model 'test_resnet'.*nexpected key"):
        classifier(timm="test_resnet", checkpoint=str(path))


def test_unknown_class_path_raises_naming_it() -> None:
    """A class path that does not import raises ValueError naming the path."""
    with pytest.raises(ValueError, match="no_such_module.Net"):
        classifier(class_path="no_such_module.Net")


def test_a_preprocessing_that_resizes_by_more_than_twice_is_named() -> None:
    """timm's ImageNet data config on 32-pixel images (×8) is worth a warning; on 224-pixel images it is not."""
    wrapper = classifier(timm="test_resnet", num_classes=3, preprocessing=Preprocessing(resize=256, crop=224))
    assert "resizes the 32-pixel images to 256 pixels (8×)" in rescale_warning(wrapper, 32)
    assert rescale_warning(wrapper, 224) is None and rescale_warning(wrapper, 160) is None
    assert "(0.25×)" in rescale_warning(wrapper, 1024)
