"""Feature extractors for FID / sFID: torch-fidelity's Inception from a local file, or any network's penultimate layer.

An extractor maps [0, 1] RGB images ``(B, 3, H, W)`` to features ``(B, D)`` and tells ``D`` by its
``num_features`` attribute (the FID states are allocated before any image is seen, also on a rank
that gets none).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from ldce.images import to_uint8_tensor

INCEPTION_FEATURES = 2048


class PenultimateFeatures(nn.Module):
    """The input of ``model``'s last ``nn.Linear`` (or of the submodule named ``layer``), flattened: ``(B, D)``.

    For a classifier this is its penultimate representation, e.g. an independent judge classifier's
    feature space. ``D`` is read from that layer's ``in_features``.
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
        self.layer = layer or (linears[-1] if linears else None)
        modules = dict(model.named_modules())
        if self.layer not in modules:
            raise ValueError(
                f"penultimate features: no layer {self.layer!r} in {type(model).__name__} (nn.Linear layers: {linears})"
            )
        target = modules[self.layer]
        if not hasattr(target, "in_features"):
            raise ValueError(f"penultimate features: layer {self.layer!r} ({type(target).__name__}) has no in_features")
        self.num_features = int(target.in_features)
        self._captured: list[Tensor] = []
        target.register_forward_hook(lambda module, inputs, output: self._captured.append(inputs[0]))

    def train(self, mode: bool = True) -> PenultimateFeatures:
        """Ignore ``mode``: the network stays in eval mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns ``(B, num_features)``."""
        self._captured.clear()
        self.model(images)
        return self._captured[-1].flatten(1)


class InceptionFeatures(nn.Module):
    """FID's Inception-v3 pool features ``(B, 2048)`` (torch-fidelity's port of the TF-slim 2015-12-05 graph).

    ``weights_path``: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``. Needs the
    ``torch-fidelity`` package (``pip install torch-fidelity``); images are quantised to uint8 as
    that network expects, then resized to 299 × 299 by it.
    """

    num_features = INCEPTION_FEATURES

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"{weights_path}: no such file")
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise ModuleNotFoundError("Inception FID needs the torch-fidelity package (pip install torch-fidelity)")
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(INCEPTION_FEATURES)],
            feature_extractor_weights_path=weights_path,
        )

    def forward(self, images: Tensor) -> Tensor:
        """images: ``(B, 3, H, W)`` in [0, 1]. Returns ``(B, 2048)`` float32."""
        return self.net(to_uint8_tensor(images)).float()


def feature_dimension(extractor: nn.Module) -> int:
    """``extractor.num_features``; a clear error for a module that does not declare it."""
    dimension = getattr(extractor, "num_features", None)
    if not isinstance(dimension, int) or dimension < 1:
        raise ValueError(
            f"{type(extractor).__name__} has no integer num_features: wrap the network in "
            "ldce.metrics.features.PenultimateFeatures or give the module a num_features attribute"
        )
    return dimension
