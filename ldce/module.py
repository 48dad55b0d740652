"""``CounterfactualModule``: LDCE as a LightningModule whose ``predict_step`` explains a batch."""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveInt, restricted_number_type
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from tqdm.auto import tqdm

from ldce.backbones.base import Backbone
from ldce.config import Guidance, LDCEConfig
from ldce.consensus import ConeProjection
from ldce.explain import Counterfactuals, explain
from ldce.performance import Attention, Speedups, apply_speedups
from ldce.sampler import StepRecord
from ldce.schedule import start_index
from ldce.targets import FromSample, TargetPolicy, read_class_names

log = logging.getLogger(__name__)

Degrees = restricted_number_type("Degrees", float, [(">", 0), ("<=", 180)], join="and")


class CounterfactualModule(LightningModule):
    """Latent diffusion counterfactual explanations of ``classifier`` with ``backbone``.

    The guidance hyperparameters are those of the original project (see ``LDCEConfig``).
    ``targets`` chooses each input's target class; ``class_names`` (a list or a file) names
    classes in the records; ``record_steps`` returns every step's predicted clean image and
    consensus mask (for videos); ``step_progress`` shows a progress bar over denoising steps;
    ``on_error`` decides whether an unusable input (corrupt image, no label, target out of range)
    is reported and skipped or stops the run. ``micro_batch_size`` computes the inputs in groups
    of exactly that many (the last group padded with copies): a sample's result is then bitwise
    the same whatever the batch size and the number of processes — CPU kernels are not
    batch-invariant, so without it results differ by float round-off (~1e-5) between batch sizes.
    ``batched_vjp``, ``channels_last``, ``attention``, ``gradient_checkpointing`` and ``compile``
    trade speed and memory without changing results (see ``ldce.performance``).
    """

    def __init__(
        self,
        backbone: Backbone,
        classifier: nn.Module,
        strength: ClosedUnitInterval = 0.382,
        ddim_steps: PositiveInt = 500,
        ddim_eta: NonNegativeFloat = 0.0,
        scale: NonNegativeFloat = 3.0,
        classifier_lambda: NonNegativeFloat = 2.3,
        dist_lambda: NonNegativeFloat = 0.3,
        deg_cone_projection: Degrees = 45.0,
        lp_custom: Literal[1, 2] = 1,
        guidance: Guidance = "projected",
        cone_projection_type: ConeProjection = "zero_binning",
        consensus_chunk_size: PositiveInt = 1,
        enforce_same_norms: bool = True,
        seed: int = 0,
        targets: TargetPolicy | None = None,
        class_names: list[str] | str | None = None,
        record_steps: bool = False,
        step_progress: bool = True,
        on_error: Literal["skip", "fail"] = "skip",
        micro_batch_size: PositiveInt | None = None,
        batched_vjp: bool = False,
        channels_last: bool = False,
        attention: Attention = "sdpa",
        gradient_checkpointing: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        speedups = Speedups(channels_last, attention, gradient_checkpointing, compile)
        self.backbone = apply_speedups(backbone.eval().requires_grad_(False), speedups)
        self.classifier = classifier.eval().requires_grad_(False)
        self.config = LDCEConfig(
            strength=float(strength), ddim_steps=int(ddim_steps), ddim_eta=float(ddim_eta), scale=float(scale),
            classifier_lambda=float(classifier_lambda), dist_lambda=float(dist_lambda), deg_cone_projection=float(deg_cone_projection),
            lp_custom=lp_custom, guidance=guidance, cone_projection_type=cone_projection_type,
            consensus_chunk_size=int(consensus_chunk_size), enforce_same_norms=enforce_same_norms, batched_vjp=batched_vjp,
        )  # fmt: skip
        self.seed = seed
        self.targets = targets or FromSample()
        self.class_names = read_class_names(class_names)
        self.record_steps = record_steps
        self.step_progress = step_progress
        self.on_error = on_error
        self.micro_batch_size = micro_batch_size

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """Explain the good samples of a batch; pass failures and skipped keys through.

        batch: ``key`` (B strings), ``image`` ``(B, 3, H, W)`` in [0, 1], ``label``, ``target``
        (−1: none), ``index`` (−1: unknown), int64 ``(B,)``; optional ``failed`` (list of
        ``{"key", "reason"}``) and ``skipped`` (keys). Returns a dict of CPU tensors / lists.
        """
        failed, keys = list(batch.get("failed", [])), list(batch["key"])
        out: dict[str, Any] = {"failed": failed, "skipped": list(batch.get("skipped", [])), "key": []}
        targets = self._targets(batch, failed) if keys else torch.zeros(0, dtype=torch.int64)
        if failed and self.on_error == "fail":
            raise RuntimeError(f"unusable inputs (on_error=fail): {failed}")
        valid = targets >= 0
        if not valid.any():
            return out
        keep = valid.nonzero().squeeze(1).tolist()
        result, steps = self._explain(batch["image"][keep], targets[keep], [keys[i] for i in keep])
        out.update(self._outputs(batch, keep, targets, result, steps))
        return out

    def _explain(self, images: Tensor, targets: Tensor, keys: list[str]) -> tuple[Counterfactuals, list[list[StepRecord]]]:
        """``explain`` in groups of ``micro_batch_size`` (padded); the step records of each group."""
        size = self.micro_batch_size or len(keys)
        groups = [list(range(start, min(start + size, len(keys)))) for start in range(0, len(keys), size)]
        steps: list[list[StepRecord]] = [[] for _ in groups]
        on_step = self._step_callback(len(groups), len(keys))
        results = []
        for group, records in zip(groups, steps):
            padded = group + group[-1:] * (size - len(group))
            with torch.enable_grad():
                result = explain(
                    images[padded], targets[padded], self.backbone, self.classifier, self.config, self.seed,
                    [keys[i] for i in padded], callback=lambda record, records=records: on_step(record, records),
                )  # fmt: skip
            results.append(result.head(len(group)))
        return Counterfactuals.cat(results), [[r.head(len(g)) for r in records] for g, records in zip(groups, steps)]

    def _targets(self, batch: dict[str, Any], failed: list[dict[str, str]]) -> Tensor:
        """The policy's targets ``(B,)``, −1 where there is none or it is out of range (then failed)."""
        keys = batch["key"]
        with torch.no_grad():
            logits = self.classifier(batch["image"]).cpu()
        targets = self.targets(keys, batch["label"].cpu(), batch["target"].cpu(), batch["index"].cpu(), logits)
        num_classes = 2 if logits.ndim == 1 else logits.shape[1]
        invalid = (targets < 0) | (targets >= num_classes)
        for i in invalid.nonzero().squeeze(1).tolist():
            reason = "no target" if targets[i] < 0 else f"target {int(targets[i])} outside [0, {num_classes})"
            log.warning("skipping %s: %s", keys[i], reason)
            failed.append({"key": keys[i], "reason": reason})
        return torch.where(invalid, -1, targets)

    def _step_callback(self, groups: int, batch_size: int):
        total = groups * start_index(self.config.strength, self.config.ddim_steps)
        show = self.step_progress and total > 0 and (self._trainer is None or self.trainer.is_global_zero)
        bar = tqdm(total=total, desc=f"denoising {batch_size} inputs", leave=False, position=1, disable=not show)

        def on_step(record: StepRecord, records: list[StepRecord]) -> None:
            bar.update(1)
            if bar.n == total:
                bar.close()
            if self.record_steps:
                records.append(record)

        return on_step

    def _outputs(self, batch: dict[str, Any], keep: list[int], targets: Tensor, result: Counterfactuals, steps: list[list[StepRecord]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": [batch["key"][i] for i in keep],
            "meta": [batch["meta"][i] for i in keep] if "meta" in batch else [{} for _ in keep],
            "label": batch["label"][keep].cpu(),
            "target": targets[keep],
            "original": batch["image"][keep].float().cpu(),
            "counterfactual": result.images.float().cpu(),
            "consensus": None if result.consensus is None else result.consensus.cpu(),
            "seed": self.seed,
        }
        for name in ("source_prediction", "source_confidence", "prediction", "confidence", "target_confidence", "l1", "l2"):
            value = getattr(result, name)
            out[name] = (value.float() if value.is_floating_point() else value).cpu()
        if self.record_steps and steps[0]:
            out["step_images"] = torch.cat([torch.stack([s.clean_image for s in group], 1) for group in steps]).cpu()
            masks = None if steps[0][0].consensus_mask is None else [torch.stack([s.consensus_mask for s in g], 1) for g in steps]
            out["step_masks"] = None if masks is None else torch.cat(masks).cpu()
        return out
