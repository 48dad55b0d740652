"""The judges' networks, rebuilt from their published checkpoints (local files only).

=====================  ==============================================================================
metric               file accepted
=====================  ==============================================================================
S3                   SimSiam's official ResNet-50 checkpoint (``checkpoint_0099.pth.tar``): a torch
                     file whose ``state_dict`` holds ``module.encoder.*`` (ResNet-50 + 3-layer
                     projector); ``module.predictor.*`` is ignored. Loaded by
                     ``ldce.classifiers.features.simsiam_resnet50`` (ImageNet normalisation, no resize).
FVA, FS              VGGFace2 ``resnet50_ft`` (``resnet50_ft_weight.pkl`` of VGGFace2-pytorch): a
                     pickle of ``{name: numpy array}`` in torchvision ResNet naming (read with a
                     restricted unpickler that only builds numpy arrays), or the same tensors as a
                     safetensors / torch state dict.
MNAC, CD             the CelebA-HQ attribute oracle of STEEX / ACE (``checkpoint.tar`` of
                     ``checkpoints_oracle_attribute``): a torch file whose ``model_state_dict`` holds
                     ``feat_extract.*`` (VGGFace2 ResNet-50 in MatConvNet "DAG" naming) and
                     ``classifier.*`` (2048 → 40); other entries (epoch, optimizer) are ignored.
=====================  ==============================================================================

VGGFace2's ResNet-50 is Caffe-style: the stride of a stage sits on the first 1×1 convolution of its
first block and the stem's max-pool rounds up; :func:`caffe_resnet50` builds it from torchvision's.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from ldce.checkpoints import load_strict, read_tensors
from ldce.classifiers import ClassifierWrapper, Preprocessing

VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)
FACE_SIZE = 224


def caffe_resnet50(num_classes: int) -> torchvision.models.ResNet:
    """ResNet-50 as converted from Caffe (VGGFace2): stride on each stage's first 1×1 conv, ceil-mode max-pool."""
    net = torchvision.models.resnet50(num_classes=num_classes)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for stage in (net.layer2, net.layer3, net.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    return net


class FaceInput(nn.Module):
    """[0, 1] RGB ``(B, 3, H, W)`` → ``resnet50_ft`` input ``(B, 3, h, w)``: shorter side 224, BGR,
    ``255·x − mean_BGR``.

    The resize is bilinear with antialiasing, as the PIL ``Resize(224)`` of VGGFace2's evaluation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(VGGFACE2_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        short = min(height, width)
        size = (
            (FACE_SIZE, int(FACE_SIZE * width / height))
            if height == short
            else (int(FACE_SIZE * height / width), FACE_SIZE)
        )
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return images.flip(1) * 255 - self.mean.to(images.dtype)


def vggface2_embedder(weights_path: str) -> ClassifierWrapper:
    """Face embeddings ``(B, 2048)`` (pooled ``resnet50_ft`` features) of [0, 1] RGB images ``(B, 3, H, W)``."""
    net = caffe_resnet50(num_classes=8631)
    what = "VGGFace2 resnet50_ft (torchvision ResNet naming)"
    load_strict(net, read_tensors(weights_path, what), weights_path, what)
    net.fc = nn.Identity()
    return ClassifierWrapper(nn.Sequential(FaceInput(), net))


DAG_LAYER = re.compile(r"conv(\d)_(\d+)_(1x1_reduce|3x3|1x1_increase|1x1_proj)(_bn)?\.(\w+)$")
DAG_PART = {
    "1x1_reduce": ("conv1", "bn1"),
    "3x3": ("conv2", "bn2"),
    "1x1_increase": ("conv3", "bn3"),
    "1x1_proj": ("downsample.0", "downsample.1"),
}


def dag_to_torchvision(name: str) -> str:
    """``feat_extract.conv3_1_1x1_proj_bn.weight`` → ``layer2.0.downsample.1.weight``; unknown names unchanged."""
    name = name.removeprefix("feat_extract.")
    if name.startswith("classifier."):
        return "fc." + name.removeprefix("classifier.")
    stem = re.match(r"conv1_7x7_s2(_bn)?\.(\w+)$", name)
    if stem:
        return f"{'bn1' if stem.group(1) else 'conv1'}.{stem.group(2)}"
    layer = DAG_LAYER.match(name)
    if not layer:
        return name
    stage, block, part, bn, parameter = layer.groups()
    return f"layer{int(stage) - 1}.{int(block) - 1}.{DAG_PART[part][bool(bn)]}.{parameter}"


def celebahq_oracle(weights_path: str) -> ClassifierWrapper:
    """The 40-attribute oracle: logits ``(B, 40)`` of [0, 1] RGB images (``(x − ½)/½``, bicubic to 224)."""
    net = caffe_resnet50(num_classes=40)
    what = "the STEEX/ACE CelebA-HQ attribute oracle (OracleResnet)"
    state = {
        dag_to_torchvision(name): value for name, value in read_tensors(weights_path, what, "model_state_dict").items()
    }
    load_strict(net, state, weights_path, what)
    preprocessing = Preprocessing(resize=FACE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")
    return ClassifierWrapper(net, preprocessing)
