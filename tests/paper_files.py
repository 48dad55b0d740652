"""Tiny stand-ins of the paper's released files, written in their *original* formats (random weights).

* :func:`save_lightning_checkpoint`: a PyTorch Lightning ``.ckpt`` as CompVis released theirs —
  ``state_dict`` next to ``epoch``, ``global_step``, a ``callbacks`` dict keyed by the
  ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`` class and numpy scalars, all of
  which ``torch.load(weights_only=True)`` rejects. The class is a stand-in registered under
  Lightning's module path while saving, so the pickle names exactly that global.
* cin256-v2-shaped class-conditional LDM (CompVis key names; the structure of the golden
  ``tiny_cin_ldm.yaml``), miniSD-shaped SD checkpoint (via ``sd_original_format``), STEEX's
  ``checkpoint.tar``, DINO's ``dino_deitsmall8_pretrain.pth``, a DINO linear head, torchvision's
  ResNet-50 file, SimSiam's ``checkpoint_0099.pth.tar``, weights of the ``open_clip`` stand-in, and
  level-5 MAT files (numbers, strings, cell and struct arrays).
"""

from __future__ import annotations

import contextlib
import importlib.util
import struct
import sys
import types
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import yaml
from diffusers import UNet2DConditionModel, VQModel
from sd_original_format import original_config, original_state_dict, save_clip
from torch import Tensor, nn

from ldce.backbones import ldm_config
from ldce.classifiers.features import simsiam_projector
from ldce.classifiers.paper import SteexDenseNet
from ldce.testing.models import tiny_ldm_params, tiny_stable_diffusion

LIGHTNING_MODULE = "pytorch_lightning.callbacks.model_checkpoint"


@contextlib.contextmanager
def lightning_modules() -> Iterator[type]:
    """A ``ModelCheckpoint`` stand-in importable as Lightning's, while the ``with`` lasts."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", LIGHTNING_MODULE]
    saved = {name: sys.modules.get(name) for name in names}
    stand_in = type("ModelCheckpoint", (), {"__module__": LIGHTNING_MODULE})
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[LIGHTNING_MODULE].ModelCheckpoint = stand_in
    try:
        yield stand_in
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def save_lightning_checkpoint(state: dict[str, Tensor], path: Path) -> Path:
    """``state`` as the ``state_dict`` of a Lightning checkpoint with non-tensor bookkeeping."""
    with lightning_modules() as model_checkpoint:
        torch.save(
            {
                "epoch": 3,
                "global_step": 1000,
                "pytorch-lightning_version": "1.4.2",
                "state_dict": state,
                "callbacks": {model_checkpoint: {"best_model_score": np.float64(0.25), "best_model_path": "x.ckpt"}},
                "lr_schedulers": [],
                "hparams_name": "kwargs",
            },
            path,
        )
    return path


def ldm_schedule_buffers(params: dict) -> dict[str, Tensor]:
    """The 12 persistent schedule buffers of ``LatentDiffusion`` (linear betas, float64 → float32)."""
    betas = (
        torch.linspace(
            params["linear_start"] ** 0.5, params["linear_end"] ** 0.5, params["timesteps"], dtype=torch.float64
        )
        ** 2
    )
    abar = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    variance = betas * (1 - prev) / (1 - abar)
    buffers = {
        "betas": betas,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": abar.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - abar).log(),
        "sqrt_recip_alphas_cumprod": (1 / abar).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / abar - 1).sqrt(),
        "posterior_variance": variance,
        "posterior_log_variance_clipped": variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * prev.sqrt() / (1 - abar),
        "posterior_mean_coef2": (1 - prev) * (1 - betas).sqrt() / (1 - abar),
    }
    return {k: v.float() for k, v in buffers.items()}


def tiny_cin_params(num_classes: int) -> dict:
    """``model.params`` of the golden ``tiny_cin_ldm.yaml`` structure with ``num_classes`` + null rows."""
    params = tiny_ldm_params(num_classes)
    params["first_stage_config"]["params"]["ddconfig"]["ch_mult"] = [1, 2, 4]
    return params


def write_tiny_cin(folder: Path, num_classes: int = 1000, seed: int = 0) -> tuple[Path, Path]:
    """A cin256-v2-shaped LDM (VQ-f4, 3×8×8 latents of 32 px images) as ``model.ckpt`` + ``model.yaml``."""
    params = tiny_cin_params(num_classes)
    spec = ldm_config.ldm_spec(params, "tiny cin")
    torch.manual_seed(seed)
    unet, vq = UNet2DConditionModel(**spec.unet_config), VQModel(**spec.first_stage_config)
    state = original_state_dict(unet, vq) | ldm_schedule_buffers(params)
    state["cond_stage_model.embedding.weight"] = torch.randn(num_classes + 1, spec.unet_config["cross_attention_dim"])
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "model.yaml"
    config.write_text(
        yaml.safe_dump({"model": {"target": "ldm.models.diffusion.ddpm.LatentDiffusion", "params": params}})
    )
    return save_lightning_checkpoint(state, folder / "model.ckpt"), config


def write_tiny_minisd(folder: Path, image_size: int = 32) -> tuple[Path, Path, Path]:
    """A miniSD-shaped SD (tiny UNet/VAE/CLIP) as ``miniSD.ckpt``, its yaml and a CLIP folder."""
    sd = tiny_stable_diffusion(["a", "b"], image_size=image_size, vae_channels=(32, 32, 64, 64))
    state = original_state_dict(sd.unet, sd.vae, sd.text_encoder) | {"alphas_cumprod": sd.alphas_cumprod}
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "miniSD.yaml"
    config.write_text(yaml.safe_dump(original_config(sd.unet, sd.vae, image_size)))
    checkpoint = save_lightning_checkpoint(state, folder / "miniSD.ckpt")
    return checkpoint, config, save_clip(sd, folder / "clip")


def write_steex(path: Path, seed: int = 0) -> Path:
    """STEEX's ``checkpoint.tar``: epoch, optimizer state, loss and ``model_state_dict``."""
    torch.manual_seed(seed)
    model = SteexDenseNet()
    optimizer = torch.optim.Adam(model.classifier.parameters())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "epoch": 5,
            "optimizer_state_dict": optimizer.state_dict(),
            "loss": 0.21,
            "model_state_dict": model.state_dict(),
        },
        path,
    )
    return path


def write_dino(path: Path, seed: int = 0) -> Path:
    """DINO's ``dino_deitsmall8_pretrain.pth``: a flat ViT-S/8 state dict without head."""
    import timm

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(timm.create_model("vit_small_patch8_224", num_classes=0).state_dict(), path)
    return path


def write_linear_head(path: Path, num_classes: int = 102, seed: int = 0) -> Path:
    """A DINO ``LinearClassifier`` state dict: ``linear.weight`` ``(K, 384)``, ``linear.bias``."""
    torch.manual_seed(seed)
    torch.save({"linear.weight": torch.randn(num_classes, 384) * 0.05, "linear.bias": torch.zeros(num_classes)}, path)
    return path


def write_torchvision(path: Path, name: str = "resnet50", seed: int = 0) -> Path:
    """A torchvision weight file (flat state dict) of ``name``."""
    import torchvision

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.get_model(name, weights=None).state_dict(), path)
    return path


def write_simsiam(path: Path, seed: int = 0) -> Path:
    """SimSiam's ``checkpoint_0099.pth.tar``: DDP keys ``module.encoder.*`` / ``module.predictor.*``."""
    import torchvision

    torch.manual_seed(seed)
    encoder = torchvision.models.resnet50(weights=None)
    encoder.fc = simsiam_projector()
    predictor = nn.Sequential(nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 2048))
    state = {f"module.encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"module.predictor.{k}": v for k, v in predictor.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"epoch": 100, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path
    )
    return path


def write_open_clip_stub(path: Path) -> Path:
    """Weights of the test stand-in of ``open_clip`` (``tests/stubs/open_clip``)."""
    spec = importlib.util.spec_from_file_location(
        "open_clip_stub", Path(__file__).parent / "stubs" / "open_clip" / "__init__.py"
    )
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    return stub.write_weights(path)


def _mat_element(kind: int, payload: bytes) -> bytes:
    """A MAT-5 data element: tag and payload padded to 8 bytes."""
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _mat_matrix(name: str, value: object) -> bytes:
    """A ``miMATRIX`` element: doubles, a string (char array), a list of dicts (struct array) or a list (cell)."""
    if isinstance(value, str):
        mx_class, dims, content = (
            4,
            (1, len(value)),
            _mat_element(4, np.array([ord(c) for c in value], "<u2").tobytes()),
        )
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        fields = list(value[0])
        width = max(map(len, fields)) + 1
        names = b"".join(f.encode().ljust(width, b"\0") for f in fields)
        mx_class, dims = 2, (len(value), 1)
        content = _mat_element(5, struct.pack("<i", width)) + _mat_element(1, names)
        content += b"".join(_mat_matrix("", record[f]) for record in value for f in fields)
    elif isinstance(value, list):
        mx_class, dims, content = 1, (len(value), 1), b"".join(_mat_matrix("", v) for v in value)
    else:
        array = np.atleast_2d(np.asarray(value, dtype="<f8"))
        mx_class, dims, content = 6, array.shape, _mat_element(9, array.tobytes(order="F"))
    header = _mat_element(6, struct.pack("<II", mx_class, 0)) + _mat_element(5, struct.pack(f"<{len(dims)}i", *dims))
    return _mat_element(14, header + _mat_element(1, name.encode()) + content)


def write_mat(path: Path, variables: dict[str, object], compress: bool = True) -> Path:
    """A MATLAB level-5 file of ``variables`` (see :func:`_mat_matrix`), each optionally zlib-compressed."""
    header = b"MATLAB 5.0 MAT-file, written by ldce tests".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    body = b""
    for name, value in variables.items():
        element = _mat_matrix(name, value)
        packed = zlib.compress(element)  # a compressed element is not padded
        body += struct.pack("<II", 15, len(packed)) + packed if compress else element
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return path
