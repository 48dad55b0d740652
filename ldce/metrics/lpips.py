"""LPIPS (Zhang et al. 2018) with torchmetrics' network, its backbone loaded from a local torchvision file.

torchmetrics ships LPIPS's linear layers but downloads the backbone (AlexNet / VGG-16 /
SqueezeNet 1.1) through torchvision; here the backbone's ``features.*`` tensors come from the local
file instead (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth`` or ``squeezenet1_1-b8a52dc0.pth``,
or any state dict holding the same ``features.*`` entries; other entries are ignored).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torchmetrics.functional.image.lpips import _NoTrainLpips

from ldce.checkpoints import load_strict, read_tensors
from ldce.metrics.pairs import MeanOfPairs

LpipsNet = Literal["alex", "vgg", "squeeze"]


def lpips_network(backbone_weights: str, net: LpipsNet = "alex") -> _NoTrainLpips:
    """torchmetrics' LPIPS module (shipped linear layers) with its backbone from ``backbone_weights``.

    The backbone's slices hold torchvision's ``features[i]`` under ``slice<k>.<i>``; each takes the
    file's ``features.<i>`` tensors.
    """
    network = _NoTrainLpips(pretrained=True, net=net, pnet_rand=True)
    what = f"the LPIPS {net} backbone (torchvision features.*)"
    tensors = read_tensors(backbone_weights, what)
    state = {name: tensors[_file_name(name)] for name in network.net.state_dict() if _file_name(name) in tensors}
    load_strict(network.net, state, backbone_weights, what)
    return network.eval().requires_grad_(False)


def _file_name(slice_name: str) -> str:
    """``slice2.3.weight`` → ``features.3.weight``."""
    return "features." + slice_name.split(".", 1)[1]


class LPIPS(MeanOfPairs):
    """Mean LPIPS distance ``d(x, x') = Σ_l (1/H_l W_l) Σ_{h,w} ‖w_l ⊙ (ŷ_l(x) − ŷ_l(x'))‖²`` over pairs.

    ``ŷ_l``: channel-normalised backbone activations of layer l; ``w_l``: the learned linear weights.
    Images in [0, 1] are mapped to [−1, 1] by the network (``normalize=True``).
    """

    higher_is_better = False

    def __init__(self, backbone_weights: str, net: LpipsNet = "alex") -> None:
        super().__init__()
        self.network = lpips_network(backbone_weights, net)

    def update(self, original: Tensor, counterfactual: Tensor) -> None:
        """original, counterfactual: ``(B, 3, H, W)`` in [0, 1]."""
        self._add(self.network(original.float(), counterfactual.float(), normalize=True).flatten())
