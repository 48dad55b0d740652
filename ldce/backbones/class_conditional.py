"""Class-conditional latent diffusion (the ImageNet "cin256-v2" LDM) as an LDCE :class:`Backbone`.

Components are diffusers modules: ``UNet2DConditionModel`` (noise model), ``VQModel`` or
``AutoencoderKL`` (first stage) and an ``nn.Embedding`` class table whose last row is the null
class ``u``; a class ``y`` conditions the UNet as one cross-attention token ``table[y]`` (B, 1, D).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, VQModel
from safetensors.torch import save_file
from torch import Tensor, nn

from ldce.backbones import compvis, ldm_config
from ldce.backbones.base import Backbone, Networks, check_targets, linear_alphas_cumprod
from ldce.checkpoints import read_tensors

log = logging.getLogger(__name__)

CACHE_FORMAT = "ldce.class_conditional/1"
CACHE_JSON = "ldce_backbone.json"
CACHE_TENSORS = "ldce_backbone.safetensors"
FIRST_STAGE_CLASSES: dict[str, type[nn.Module]] = {"vq": VQModel, "kl": AutoencoderKL}


class ClassConditionalLDM(Backbone):
    """``eps(z, t, c)`` with ``c = table[y]`` as a single cross-attention token.

    unet: latents ``(B, C, h, w)`` → eps; first_stage: images in [-1, 1] ↔ latents ``z / s``;
    class_embedding: ``(num_classes + 1, D)``, the last row the null class; alphas_cumprod: float32
    ``(T,)``. Parameters are frozen and the model is in eval mode: LDCE only differentiates w.r.t. ``z``.
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        first_stage: VQModel | AutoencoderKL,
        class_embedding: nn.Embedding,
        alphas_cumprod: Tensor,
        scale_factor: float,
        image_size: int,
    ) -> None:
        super().__init__()
        self.unet, self.first_stage, self.class_embedding = unet, first_stage, class_embedding
        self.register_buffer("alphas_cumprod", alphas_cumprod.to(torch.float32))
        self.scale_factor, self.image_size = float(scale_factor), int(image_size)
        self.requires_grad_(False)
        self.eval()

    @property
    def null_class(self) -> int:
        """Index of the null (unconditional) row: the table's last row (1000 for cin256-v2)."""
        return self.class_embedding.num_embeddings - 1

    def networks(self) -> Networks:
        return Networks(self.unet, self.first_stage, self.first_stage.decoder)

    @property
    def is_vq(self) -> bool:
        return isinstance(self.first_stage, VQModel)

    def conditioning(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(table[y][:, None], table[null][:, None])``, each ``(B, 1, D)``; ``y`` in ``[0, null)``."""
        check_targets(targets, self.null_class)
        targets = targets.to(self.class_embedding.weight.device)
        null = torch.full_like(targets, self.null_class)
        return self.class_embedding(targets)[:, None, :], self.class_embedding(null)[:, None, :]

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        """``eps(z, t, c)``: latents ``(B, C, h, w)``, timesteps int64 ``(B,)``, cond ``(B, 1, D)``."""
        return self.unet(latents, timesteps, encoder_hidden_states=cond).sample

    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        """``z0 = s · E(2x − 1)``: VQ pre-quantisation latents; KL ``mean + std · noise`` (mode if ``None``)."""
        if self.is_vq:
            return self.scale_factor * self.first_stage.encode(2 * images - 1).latents
        posterior = self.first_stage.encode(2 * images - 1).latent_dist
        return self.scale_factor * (posterior.mode() if noise is None else posterior.mean + posterior.std * noise)

    def decode(self, latents: Tensor) -> Tensor:
        """``(D(z / s) + 1) / 2``; VQ quantises first with a straight-through estimator."""
        z = (1.0 / self.scale_factor) * latents  # (1/s)·z as the original writes it, bit for bit
        if not self.is_vq:
            return (self.first_stage.decode(z).sample + 1) / 2
        z_q, _ = self.quantize(z)
        # straight-through: forward value z + (z_q − z), gradient of the identity
        return (self.first_stage.decode(z + (z_q - z).detach(), force_not_quantize=True).sample + 1) / 2

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest codebook rows ``(B, C, h, w)`` and their indices ``(B, h, w)`` (VQ only, no gradient).

        Distances as the original computes them, ``|z|² + |e|² − 2 z·e`` (not ``cdist``), so that the
        argmin, and with it the decoded image, matches it exactly.
        """
        codebook = self.first_stage.quantize.embedding.weight
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        distances = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.t()
        index = distances.argmin(1)
        z_q = codebook[index].view(z.shape[0], z.shape[2], z.shape[3], z.shape[1]).permute(0, 3, 1, 2)
        return z_q, index.view(z.shape[0], z.shape[2], z.shape[3])

    @classmethod
    def from_converted(cls, converted: compvis.ConvertedLDM, where: str) -> ClassConditionalLDM:
        """Assemble from a :class:`compvis.ConvertedLDM` (no random initialisation)."""
        spec = converted.spec
        unet = compvis.materialise(UNet2DConditionModel, spec.unet_config, converted.unet_state, where)
        stage_class = FIRST_STAGE_CLASSES[spec.first_stage_kind]
        first_stage = compvis.materialise(stage_class, spec.first_stage_config, converted.first_stage_state, where)
        return cls(
            unet,
            first_stage,
            nn.Embedding.from_pretrained(converted.class_table, freeze=True),
            converted.alphas_cumprod,
            converted.scale_factor,
            converted.image_size,
        )

    @classmethod
    def from_compvis(
        cls,
        checkpoint_path: str | os.PathLike,
        config_path: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        use_ema: bool = False,
    ) -> ClassConditionalLDM:
        """Convert an original checkpoint + LDM yaml; with ``cache_dir``, convert once and reuse.

        The cache is reused only when it was made from the same files (path, size, mtime, EMA
        choice); otherwise it is rebuilt. Raises ``FileNotFoundError`` or
        :class:`ldce.checkpoints.CheckpointError` naming the offending file.
        """
        source = _fingerprint(Path(checkpoint_path), Path(config_path), use_ema)
        if cache_dir is not None and _cache_source(Path(cache_dir)) == source:
            log.info("loading converted LDM from cache %s", cache_dir)
            return cls.from_pretrained(cache_dir)
        spec = ldm_config.read_ldm_config(config_path)
        state = compvis.load_compvis_state_dict(checkpoint_path)
        converted = compvis.convert_compvis_state_dict(state, spec, str(checkpoint_path), use_ema=use_ema)
        model = cls.from_converted(converted, str(checkpoint_path))
        if cache_dir is not None:
            model.save_pretrained(cache_dir, source=source)
        return model

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike) -> ClassConditionalLDM:
        """Load the diffusers layout written by :meth:`save_pretrained` (local files only)."""
        local_dir = Path(local_dir)
        meta = _read_meta(local_dir)
        tensors = read_tensors(local_dir / CACHE_TENSORS, "the class table and schedule of a converted LDM")
        unet = UNet2DConditionModel.from_pretrained(local_dir, subfolder="unet", local_files_only=True)
        stage_class = FIRST_STAGE_CLASSES[meta["first_stage"]]
        first_stage = stage_class.from_pretrained(local_dir, subfolder="first_stage", local_files_only=True)
        return cls(
            unet,
            first_stage,
            nn.Embedding.from_pretrained(tensors["class_embedding"], freeze=True),
            tensors["alphas_cumprod"],
            meta["scale_factor"],
            meta["image_size"],
        )

    def save_pretrained(self, directory: str | os.PathLike, source: dict[str, Any] | None = None) -> None:
        """Write ``unet/``, ``first_stage/``, the class table and ``abar`` (safetensors) and a json.

        Written to a temporary sibling first and renamed, so concurrent readers never see half a copy.
        An existing folder is replaced only if it is empty or such a copy itself.
        """
        directory = Path(directory)
        if directory.is_dir() and any(directory.iterdir()) and not (directory / CACHE_JSON).is_file():
            raise FileExistsError(f"{directory} exists and is not a ClassConditionalLDM copy; not overwriting it")
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        staging.chmod(0o755)
        self.unet.save_pretrained(staging / "unet")
        self.first_stage.save_pretrained(staging / "first_stage")
        save_file(
            {
                "class_embedding": self.class_embedding.weight.detach().contiguous(),
                "alphas_cumprod": self.alphas_cumprod.detach().contiguous(),
            },
            str(staging / CACHE_TENSORS),
        )
        meta = {
            "format": CACHE_FORMAT,
            "first_stage": "vq" if self.is_vq else "kl",
            "scale_factor": self.scale_factor,
            "image_size": self.image_size,
            "source": source,
        }
        (staging / CACHE_JSON).write_text(json.dumps(meta, indent=2))
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)
        log.info("saved diffusers copy of the LDM to %s", directory)

    @classmethod
    def random(
        cls, params: dict[str, Any], seed: int = 0, where: str = "ClassConditionalLDM.random"
    ) -> ClassConditionalLDM:
        """A randomly initialised model of an LDM config's ``model.params`` (tests, timing).

        Built through the same config builders as :meth:`from_compvis`; the class table has the
        cond stage's ``n_classes`` rows, the last being the null class.
        """
        spec = ldm_config.ldm_spec(params, where)
        rows = params["cond_stage_config"]["params"]["n_classes"]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(**spec.unet_config)
            stage = FIRST_STAGE_CLASSES[spec.first_stage_kind](**spec.first_stage_config)
            table = nn.Embedding(rows, spec.unet_config["cross_attention_dim"])
        abar = linear_alphas_cumprod(spec.params["linear_start"], spec.params["linear_end"], spec.params["timesteps"])
        return cls(
            unet, stage, table, abar, float(params.get("scale_factor", 1.0)), spec.first_stage_config["sample_size"]
        )


def _fingerprint(checkpoint: Path, config: Path, use_ema: bool) -> dict[str, Any]:
    """Identity of a conversion's inputs; also fails early on missing files, naming them."""
    for path, what in ((checkpoint, "LDM checkpoint"), (config, "LDM config")):
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path} not found")
    stats = {str(p.resolve()): [p.stat().st_size, p.stat().st_mtime_ns] for p in (checkpoint, config)}
    return {"files": stats, "use_ema": use_ema}


def _cache_source(directory: Path) -> dict[str, Any] | None:
    """The ``source`` fingerprint of a complete cache in ``directory``, else ``None``."""
    try:
        return _read_meta(directory).get("source")
    except (FileNotFoundError, ValueError):
        return None


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / CACHE_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a ClassConditionalLDM.save_pretrained folder")
    meta = json.loads(path.read_text())
    if meta.get("format") != CACHE_FORMAT or meta.get("first_stage") not in FIRST_STAGE_CLASSES:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r} (expected {CACHE_FORMAT!r})")
    return meta
