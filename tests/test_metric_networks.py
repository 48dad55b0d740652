"""The judges' networks load their published checkpoint formats (random weights, saved as the originals are)."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ldce.checkpoints import CheckpointError, read_tensors
from ldce.classifiers import IMAGENET_MEAN, IMAGENET_STD
from ldce.classifiers.features import simsiam_resnet50
from ldce.metrics.networks import caffe_resnet50, celebahq_oracle, dag_to_torchvision, vggface2_embedder


def _randomise_batch_norms(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that eval mode differs from an identity normalisation."""
    generator = torch.Generator().manual_seed(5)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def _official_simsiam() -> tuple[nn.Module, nn.Module]:
    """Encoder and predictor as facebookresearch/simsiam's builder makes them (ResNet-50, dim 2048, pred_dim 512)."""
    encoder = torchvision.models.resnet50(num_classes=2048, zero_init_residual=True)
    width = encoder.fc.weight.shape[1]
    encoder.fc = nn.Sequential(
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        encoder.fc,
        nn.BatchNorm1d(2048, affine=False),
    )
    predictor = nn.Sequential(
        nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, 2048)
    )
    return _randomise_batch_norms(encoder), predictor


def test_s3_network_embeds_like_the_official_simsiam_encoder(tmp_path):
    torch.manual_seed(0)
    encoder, predictor = _official_simsiam()
    state = {f"module.encoder.{k}": v for k, v in encoder.state_dict().items()} | {
        f"module.predictor.{k}": v for k, v in predictor.state_dict().items()
    }
    path = tmp_path / "checkpoint_0099.pth.tar"
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state}, path)
    images = torch.rand(2, 3, 64, 64)
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(simsiam_resnet50(str(path))(images), encoder(normalised), atol=1e-5)


def test_caffe_resnet50_strides_on_the_first_1x1_convolution_and_rounds_up_pooling():
    net = caffe_resnet50(num_classes=7)
    for stage in (net.layer2, net.layer3, net.layer4):
        assert stage[0].conv1.stride == (2, 2) and stage[0].conv2.stride == (1, 1)
    assert net.maxpool.ceil_mode and net.maxpool.padding == 0
    assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 7)


def test_vggface2_embedder_reads_the_pickled_numpy_weights(tmp_path):
    """resnet50_ft_weight.pkl: {name: ndarray}; input: shorter side 224 (antialiased), BGR, 255·x − mean_BGR."""
    torch.manual_seed(0)
    net = _randomise_batch_norms(caffe_resnet50(num_classes=8631))
    path = tmp_path / "resnet50_ft_weight.pkl"
    path.write_bytes(pickle.dumps({k: v.numpy() for k, v in net.state_dict().items()}, protocol=2))
    images = torch.rand(1, 3, 256, 256)
    resized = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    bgr = resized[:, [2, 1, 0]] * 255 - torch.tensor([91.4953, 103.8827, 131.0912]).view(1, 3, 1, 1)
    net.fc = nn.Identity()
    with torch.no_grad():
        assert torch.allclose(vggface2_embedder(str(path))(images), net(bgr), rtol=1e-4, atol=1e-4)


def test_pickled_weights_may_hold_numpy_arrays_only(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"weight": torch.nn.Identity()}))
    with pytest.raises(CheckpointError, match="evil.pkl.*only numpy arrays"):
        read_tensors(path, "face embedder weights")


def _dag_names() -> list[str]:
    """Every tensor name of STEEX's OracleResnet: MatConvNet-style ResNet-50 under feat_extract., 40-way classifier."""
    parameters = {"conv": ["weight"], "bn": ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]}
    names = [f"conv1_7x7_s2.{p}" for p in parameters["conv"]] + [f"conv1_7x7_s2_bn.{p}" for p in parameters["bn"]]
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3), strict=True):
        for block in range(1, blocks + 1):
            for part in ["1x1_reduce", "3x3", "1x1_increase"] + (["1x1_proj"] if block == 1 else []):
                names += [f"conv{stage}_{block}_{part}.{p}" for p in parameters["conv"]]
                names += [f"conv{stage}_{block}_{part}_bn.{p}" for p in parameters["bn"]]
    return [f"feat_extract.{name}" for name in names] + ["classifier.weight", "classifier.bias"]


def test_oracle_loads_a_steex_checkpoint_in_dag_naming(tmp_path):
    assert dag_to_torchvision("feat_extract.conv3_1_1x1_proj_bn.running_mean") == "layer2.0.downsample.1.running_mean"
    assert dag_to_torchvision("feat_extract.conv5_3_3x3.weight") == "layer4.2.conv2.weight"
    reference = caffe_resnet50(num_classes=40).state_dict()
    assert sorted(dag_to_torchvision(name) for name in _dag_names()) == sorted(reference)
    state = {name: torch.randn(reference[dag_to_torchvision(name)].shape) for name in _dag_names()}
    path = tmp_path / "checkpoint.tar"
    torch.save({"model_state_dict": state, "epoch": 3}, path)
    oracle = celebahq_oracle(str(path))
    assert torch.equal(
        oracle.model.layer2[0].downsample[1].running_mean, state["feat_extract.conv3_1_1x1_proj_bn.running_mean"]
    )
    assert torch.equal(oracle.model.fc.weight, state["classifier.weight"])
    assert oracle(torch.rand(1, 3, 256, 256)).shape == (1, 40)
