"""Class-conditional Diffusion Transformer (DiT, Peebles & Xie) as an LDCE :class:`Backbone`.

Components are diffusers modules: ``DiTTransformer2DModel`` (noise model; the hub's
``facebook/DiT-XL-2-256`` stores it as a legacy ``Transformer2DModel`` config, which loads into the
same class) and ``AutoencoderKL`` (``s = 0.18215``). A class ``y`` is a label for the transformer's
adaLN-Zero label embedding; the null label ``u`` is ``num_embeds_ada_norm`` (1000 for ImageNet),
the extra row that classifier-free guidance was trained with. With learned sigma the transformer
returns ``[eps, v]`` (``2C`` channels); LDCE uses ``eps`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel
from torch import Tensor

from ldce.backbones.base import Networks, check_targets
from ldce.backbones.kl_backbone import KLBackbone, read_scheduler_config, require_component
from ldce.checkpoints import existing_dir

DIT_SCHEDULER_CONFIG = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "num_train_timesteps": 1000}


class DiT(KLBackbone):
    """``eps(z, t, y) = transformer(z, t, y)[:, :C]`` with ``y`` a class label.

    transformer: latents ``(B, C, h, h)`` with ``h = sample_size`` → ``(B, C or 2C, h, h)``;
    scheduler_config: diffusers scheduler config (default DiT's linear betas 1e-4..0.02, 1000 steps).
    Parameters are frozen and the model stays in eval mode (train mode would drop labels).
    """

    def __init__(
        self, transformer: DiTTransformer2DModel, vae: AutoencoderKL, scheduler_config: dict[str, Any] | None = None
    ) -> None:
        super().__init__(vae, transformer.config.sample_size, scheduler_config or DIT_SCHEDULER_CONFIG)
        self.transformer = transformer
        self._freeze()

    def networks(self) -> Networks:
        return Networks(self.transformer, self.vae, self.vae.decoder)

    @property
    def num_classes(self) -> int:
        """Number of real classes; the null label is this index (1000 for DiT-XL/2)."""
        return self.transformer.config.num_embeds_ada_norm

    def conditioning(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, u)``: the target labels and the null label ``num_classes``, each int64 ``(B,)``."""
        check_targets(targets, self.num_classes)
        targets = targets.to(self.device, torch.long)
        return targets, torch.full_like(targets, self.num_classes)

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Tensor) -> Tensor:
        """``eps(z, t, y)``: latents ``(B, C, h, h)``, timesteps int64 ``(B,)``, cond labels int64 ``(B,)``.

        Learned-sigma models output ``[eps, v]`` along channels; the first ``C`` are ``eps``.
        """
        output = self.transformer(latents, timestep=timesteps, class_labels=cond).sample
        return output[:, : latents.shape[1]]

    @classmethod
    def from_pretrained(cls, local_dir: str | Path, **kwargs: Any) -> DiT:
        """Load a local diffusers DiT folder (``transformer/``, ``vae/``, and
        ``scheduler/scheduler_config.json`` if present, else DiT's schedule), as ``facebook/DiT-XL-2-256``."""
        folder = existing_dir(local_dir, "DiT folder")
        for component in ("transformer", "vae"):
            require_component(folder, component)
        transformer = DiTTransformer2DModel.from_pretrained(folder, subfolder="transformer", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
        kwargs.setdefault("scheduler_config", read_scheduler_config(folder, DIT_SCHEDULER_CONFIG))
        return cls(transformer, vae, **kwargs)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a diffusers folder (``transformer/ vae/ scheduler/``) that :meth:`from_pretrained` reads."""
        folder = super().save_pretrained(folder)
        self.transformer.save_pretrained(folder / "transformer")
        return folder
