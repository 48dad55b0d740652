"""The paper's classifiers from their released files, in their original key layouts, offline.

* STEEX's CelebA-HQ DenseNet-121 (``checkpoint.tar`` from valeoai/STEEX's releases): STEEX's
  ``DecisionDensenetModel`` — a torchvision DenseNet-121 whose own classifier is an identity,
  nested as ``feat_extract.feat_extract``, then ``classifier``, a linear layer to 3 attribute
  logits — saved under ``model_state_dict``. The logits are, in order, gender (male), smile and
  young; LDCE queries one of them by index (``binary_index``): 1 for smile, 2 for age.
* DINO ViT-S/8 (``dino_deitsmall8_pretrain.pth``, the original DINO release, whose key layout is
  also timm's ``vit_small_patch8_224``) with a linear head on the class token, as DINO's linear
  evaluation trains it (``linear.weight`` / ``linear.bias``); :mod:`ldce.training.linear_head`
  trains one on Flowers-102.

The ImageNet ResNet-50 is :func:`ldce.classifiers.classifier` (``torchvision: resnet50``) with torchvision's weight
file; OpenCLIP's zero-shot classifier is in :mod:`ldce.classifiers.zero_shot`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ldce.checkpoints import load_strict, read_tensors
from ldce.classifiers.wrapper import IMAGENET_MEAN, IMAGENET_STD, ClassifierWrapper, Preprocessing

STEEX_ATTRIBUTES = ("gender", "smile", "young")
DINO_ARCHITECTURE = "vit_small_patch8_224"
DINO_WIDTH = 384


class _DenseNetFeatures(nn.Module):
    """torchvision DenseNet-121 with an identity classifier: 1024 pooled features per image."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision

        self.feat_extract = torchvision.models.densenet121(weights=None)
        self.feat_extract.classifier = nn.Identity()

    def forward(self, images: Tensor) -> Tensor:
        """images: normalised ``(B, 3, H, W)``. Returns ``(B, 1024)``."""
        return self.feat_extract(images)


class SteexDenseNet(nn.Module):
    """STEEX's attribute classifier with its parameter names: ``feat_extract.feat_extract.*`` and
    ``classifier.*``. Returns one logit per attribute, ``(B, num_attributes)``."""

    def __init__(self, num_attributes: int = len(STEEX_ATTRIBUTES)) -> None:
        super().__init__()
        self.feat_extract = _DenseNetFeatures()
        self.classifier = nn.Linear(1024, num_attributes)

    def forward(self, images: Tensor) -> Tensor:
        """images: normalised ``(B, 3, H, W)``. Returns attribute logits ``(B, num_attributes)``."""
        return self.classifier(self.feat_extract(images))


STEEX_PREPROCESSING = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
DINO_PREPROCESSING = Preprocessing(crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def steex_densenet(
    checkpoint_path: str,
    binary_index: int,
    state_dict_key: str | None = "model_state_dict",
    strip_prefix: str | None = None,
    preprocessing: Preprocessing = STEEX_PREPROCESSING,
) -> ClassifierWrapper:
    """STEEX's DenseNet-121 from ``checkpoint.tar``, as a binary classifier of one attribute.

    Args:
        checkpoint_path: STEEX's ``checkpoint.tar`` (a torch file with ``model_state_dict``).
        binary_index: the attribute logit to explain: 0 gender, 1 smile, 2 young.
        state_dict_key: where the weights sit in the file.
        strip_prefix: a key prefix to drop (e.g. ``"module."`` for a DataParallel save).
        preprocessing: STEEX's classifier takes ``(x − 0.5) / 0.5`` of the 256 px image.
    """
    if not 0 <= binary_index < len(STEEX_ATTRIBUTES):
        raise ValueError(f"binary_index must be one of 0 (gender), 1 (smile), 2 (young); got {binary_index}")
    model = SteexDenseNet()
    state = read_tensors(checkpoint_path, "STEEX's checkpoint.tar", state_dict_key, strip_prefix)
    load_strict(model, state, checkpoint_path, "STEEX DecisionDensenetModel (DenseNet-121, 3 attribute logits)")
    return ClassifierWrapper(model, preprocessing, binary_index)


class LinearHead(nn.Module):
    """DINO's ``LinearClassifier``: one linear layer on flattened features (``linear.*``)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: Tensor) -> Tensor:
        """features: ``(B, …)``. Returns logits ``(B, num_classes)``."""
        return self.linear(features.flatten(1))


class DinoLinear(nn.Module):
    """A frozen backbone's features through a linear head: ``head(backbone(x))``."""

    def __init__(self, backbone: nn.Module, head: LinearHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: Tensor) -> Tensor:
        """images: normalised ``(B, 3, 224, 224)``. Returns logits ``(B, num_classes)``."""
        return self.head(self.backbone(images))


def dino_vit_small8(weights_path: str, state_dict_key: str | None = None, strip_prefix: str | None = None) -> nn.Module:
    """DINO ViT-S/8 without head: ``(B, 3, 224, 224)`` normalised → class token ``(B, 384)``.

    Reads the original ``dino_deitsmall8_pretrain.pth`` (keys ``cls_token``, ``pos_embed``,
    ``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``,
    ``norm.*``) — the same names as timm's ``vit_small_patch8_224``, which computes the same
    forward pass (class token after the final norm). Frozen and in eval mode.
    """
    import timm

    model = timm.create_model(DINO_ARCHITECTURE, pretrained=False, num_classes=0)
    what = "DINO ViT-S/8 backbone (dino_deitsmall8_pretrain.pth layout)"
    load_strict(model, read_tensors(weights_path, what, state_dict_key, strip_prefix), weights_path, what)
    return model.eval().requires_grad_(False)


def load_linear_head(
    head_path: str, num_classes: int, state_dict_key: str | None = None, strip_prefix: str | None = None
) -> LinearHead:
    """A :class:`LinearHead` on DINO ViT-S/8 features from a file with ``linear.weight``/``linear.bias``."""
    head = LinearHead(DINO_WIDTH, num_classes)
    what = f"linear head {DINO_WIDTH} → {num_classes} (linear.weight, linear.bias)"
    load_strict(head, read_tensors(head_path, what, state_dict_key, strip_prefix), head_path, what)
    return head


def dino_linear_classifier(
    backbone_path: str,
    head_path: str,
    num_classes: int = 102,
    head_state_dict_key: str | None = None,
    head_strip_prefix: str | None = None,
    preprocessing: Preprocessing = DINO_PREPROCESSING,
) -> ClassifierWrapper:
    """DINO ViT-S/8 + linear head, as the Flowers-102 experiment uses it: a centre crop of
    the (256 px) image, ImageNet normalisation, logits ``(B, num_classes)``.

    Args:
        backbone_path: ``dino_deitsmall8_pretrain.pth``.
        head_path: the trained head (``ldce fit --config configs/flowers_linear_head.yaml`` writes
            one; a DINO ``eval_linear.py`` checkpoint works with ``head_state_dict_key: state_dict``
            and ``head_strip_prefix: module.``).
        num_classes: classes of the head.
        head_state_dict_key: where the head's weights sit in its file.
        head_strip_prefix: a key prefix of the head's weights to drop.
        preprocessing: centre crop 224 of the 256 px image and ImageNet normalisation, as the reference.
    """
    model = DinoLinear(
        dino_vit_small8(backbone_path), load_linear_head(head_path, num_classes, head_state_dict_key, head_strip_prefix)
    )
    return ClassifierWrapper(model, preprocessing)
