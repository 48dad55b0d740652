"""One call from images to counterfactual explanations: ``explain(images, targets, backbone, classifier, …)``.

1. per sample, a generator seeded by ``(seed, key)``: posterior noise, start noise ``ξ``, DDIM noise
2. ``z0 = s·E(2x − 1)``, ``z = √a_n·z0 + √(1 − a_n)·ξ`` with ``n = ⌊strength·S⌋``
3. the DDIM loop ``i = n−1 … 0`` over the guided noise model of the config's terms (+ ``extra_terms``),
   with the step hooks: self-recurrence (``ldce.method.recurrence``), then the region constraint
4. ``x_cf = clamp((D(z/s) + 1)/2, 0, 1)`` and the classifier's facts on ``x`` and ``x_cf``

With ``micro_batch_size`` the inputs are computed in groups of exactly that many (the last group
padded with copies of its last input): kernels are not batch-invariant, so only then is a
counterfactual bitwise the same whatever batch it arrives in. Otherwise batch sizes differ by round-off
that the guided sampling can amplify (seen on the demo models: up to 0.4 in a latent, 0.1 in a pixel,
1e-3 on average).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.checks import check
from ldce.classifiers.logits import confidence, predict, target_probability
from ldce.method.config import LDCEConfig
from ldce.method.fast import guided_noise_model
from ldce.method.guided import StepRecord, ldce_terms
from ldce.method.outputs import Counterfactuals, StepTrace
from ldce.method.recurrence import SelfRecurrence
from ldce.method.region.constraint import RegionInputs
from ldce.method.region.constraint import finish as region_finish
from ldce.method.region.constraint import start as region_start
from ldce.method.sampler import StepCallback, StepHook, sample
from ldce.method.schedule import DDIMGrid, ddim_grid, noise_level, start_index
from ldce.method.terms import GuidanceTerm, Task


class _Recorder:
    """Collects one group's step records as ``(B, n, …)`` stacks; images and masks only when asked."""

    def __init__(self, keep_steps: bool, callback: StepCallback | None) -> None:
        self.keep_steps, self.callback = keep_steps, callback
        self.probabilities: list[Tensor] = []
        self.images: list[Tensor] = []
        self.masks: list[Tensor] = []
        self.timesteps: list[Tensor] = []

    def __call__(self, record: StepRecord) -> None:
        for kept, value in ((self.probabilities, record.target_probability), (self.masks, record.consensus_mask)):
            if value is not None:
                kept.append(value)
        if self.keep_steps:
            self.images.append(record.clean_image)
            self.timesteps.append(record.timestep.expand(record.clean_image.shape[0]))
        if self.callback is not None:
            self.callback(record)

    def consensus_share(self) -> Tensor | None:
        """Share of steps each latent pixel passed the consensus test, ``(B, h, w)`` float32."""
        if not self.masks:
            return None
        total = torch.zeros(self.masks[0].shape, device=self.masks[0].device)
        for mask in self.masks:
            total += mask
        return total / len(self.masks)

    def trace(self) -> StepTrace:
        masks = self.masks if self.keep_steps else []
        steps = (self.probabilities, self.images, masks, self.timesteps)
        return StepTrace(*(_per_sample(values) for values in steps))


def _per_sample(steps: list[Tensor]) -> Tensor | None:
    """Step-major values ``n × (B, …)`` as ``(B, n, …)``, or ``None`` for none."""
    return torch.stack(steps, 1) if steps else None


def sample_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one sample from the run's seed and the sample's key."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw_noise(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> Tensor:
    """One standard normal ``(*shape)`` per sample, each from its own CPU generator: ``(B, *shape)``."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


@torch.no_grad()
def _facts(classifier: nn.Module, images: Tensor, counterfactuals: Tensor, targets: Tensor) -> dict[str, Tensor]:
    before, after = classifier(images), classifier(counterfactuals)
    diff = (counterfactuals - images).flatten(1)
    return {
        "source_prediction": predict(before),
        "source_confidence": confidence(before),
        "prediction": predict(after),
        "confidence": confidence(after),
        "target_confidence": target_probability(after, targets),
        "l1": diff.abs().sum(1),
        "l2": diff.square().sum(1).sqrt(),
    }


def _self_recurrence(
    config: LDCEConfig,
    backbone: Backbone,
    grid: DDIMGrid,
    cond: Tensor,
    generators: Sequence[torch.Generator],
    latent_shape: Sequence[int],
    start: int,
) -> SelfRecurrence:
    """The self-recurrence hook; for ``η > 0`` its noise ``(start, repeats, B, C, h, w)`` is drawn after the
    DDIM noise, step ``i`` at row ``i`` (so the draws before it are as without self-recurrence)."""
    noise = None
    if config.ddim_eta > 0:
        repeats = range(config.self_recurrence)
        rows = [torch.stack([draw_noise(generators, latent_shape, cond.device) for _ in repeats]) for _ in range(start)]
        noise = torch.stack(rows).flip(0)
    return SelfRecurrence(backbone, grid, cond, config.self_recurrence, config.self_recurrence_every_n_steps, noise)


@dataclass(frozen=True)
class _Run:
    """What every group of one ``explain`` call shares."""

    backbone: Backbone
    classifier: nn.Module
    config: LDCEConfig
    terms: list[GuidanceTerm]
    seed: int
    record_steps: bool
    callback: StepCallback | None


def _explain_group(
    run: _Run, images: Tensor, targets: Tensor, keys: list[str], noise: Tensor | None, region: RegionInputs | None
) -> Counterfactuals:
    """Steps 1–4 of the module docstring for one group of ``B`` inputs."""
    backbone, config = run.backbone, run.config
    generators = [torch.Generator().manual_seed(sample_seed(run.seed, k)) for k in keys]
    with torch.no_grad():
        latent_shape = backbone.encode(images[:1]).shape[1:]
        z0 = backbone.encode(images, draw_noise(generators, latent_shape, images.device))
        cond, null = backbone.conditioning(targets)
    grid = ddim_grid(backbone.alphas_cumprod, config.ddim_steps, config.ddim_eta).to(z0.device)
    start = start_index(config.strength, config.ddim_steps)
    z = z0
    if start > 0:
        sqrt_alpha, sqrt_one_minus_alpha = noise_level(grid, start)
        xi = draw_noise(generators, latent_shape, z0.device)  # drawn also when replaced: later draws stay in step
        xi = xi if noise is None else noise.to(z0.device)
        z = sqrt_alpha * z0 + sqrt_one_minus_alpha * xi
    step_noise = None
    if config.ddim_eta > 0 and start > 0:
        step_noise = torch.stack([draw_noise(generators, latent_shape, z0.device) for _ in range(start)]).flip(0)
    task = Task(images, targets, cond, null)
    noise_model, stop = guided_noise_model(backbone, run.terms, grid, task, start, config)
    recorder = _Recorder(run.record_steps, run.callback)
    hooks: list[StepHook] = []
    if config.self_recurrence > 0 and start > 0:
        hooks.append(_self_recurrence(config, backbone, grid, cond, generators, latent_shape, start))
    constrained = region is not None and region.config.active and start > 0
    region_hook = region_start(region, images, run.classifier, z0, xi, grid) if constrained else None
    hooks += [] if region_hook is None else [region_hook]
    z = sample(noise_model, z, start, grid, step_noise, hooks, recorder)
    with torch.no_grad():
        counterfactuals = backbone.decode(z).float().clamp(0.0, 1.0)
    kept = None
    if region_hook is not None:
        kept = region_finish(region.config, region_hook, images, counterfactuals, targets, run.classifier)
    counterfactuals = counterfactuals if kept is None else kept.images
    facts = _facts(run.classifier, images, counterfactuals, targets)
    region_facts = (
        {} if kept is None else {"region": kept.masks, "region_growth": kept.growth, "region_confident": kept.confident}
    )
    stop_facts = {} if stop is None else {"guidance_stopped_at": stop.stopped_at}
    return Counterfactuals(
        counterfactuals,
        z,
        consensus=recorder.consensus_share(),
        trace=recorder.trace(),
        **facts,
        **region_facts,
        **stop_facts,
    )


def _per_image(tensor: Tensor) -> tuple[int, ...]:
    """``(B, H, W)`` of a ``(B, C, H, W)`` tensor."""
    return (tensor.shape[0], *tensor.shape[2:])


def explain(
    images: Tensor,
    targets: Tensor,
    backbone: Backbone,
    classifier: nn.Module,
    config: LDCEConfig | None = None,
    seed: int = 0,
    keys: Sequence[str] | None = None,
    callback: StepCallback | None = None,
    noise: Tensor | None = None,
    micro_batch_size: int | None = None,
    extra_terms: Sequence[GuidanceTerm] = (),
    record_steps: bool = False,
    region: RegionInputs | None = None,
    distance_features: nn.Module | None = None,
) -> Counterfactuals:
    """Counterfactual explanations of ``classifier`` for ``images`` towards ``targets``.

    images: ``(B, 3, H, W)`` in [0, 1] at ``backbone.image_size``; targets: int64 ``(B,)``.
    Each sample's randomness (posterior sample, start noise ``ξ``, DDIM noise for ``η > 0``, in
    that order) comes from a generator seeded by ``(seed, key)``; ``keys`` default to the batch
    positions ``"0" … "B−1"``. ``noise`` ``(B, C, h, w)`` replaces the drawn start noise ``ξ``.
    ``micro_batch_size``: compute in groups of exactly that many (batch invariance, see module
    docstring). ``extra_terms`` are added to the config's guidance terms. ``record_steps`` keeps
    every step's ``x̂0`` and consensus mask in ``trace``. ``callback`` sees every step's record
    (of each group, padding included). ``region`` constrains the change to a region of each image
    (``ldce.method.region``; ``source: none`` is LDCE as published). ``distance_features``: the
    feature extractor of ``lp_custom: dino_<loss>`` (``ldce.method.terms.feature_distance``). Raises
    ``ValueError`` on mismatched lengths or a feature distance without its extractor.
    """
    config = config or LDCEConfig()
    check("micro_batch_size", micro_batch_size, PositiveInt | None)
    keys = [str(i) for i in range(len(images))] if keys is None else list(keys)
    size = backbone.image_size
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
        raise ValueError(f"images must be (B, 3, {size}, {size}) for this backbone, got {tuple(images.shape)}")
    if len(keys) != len(images) or len(targets) != len(images) or not keys:
        raise ValueError(
            f"need as many targets and keys as images (≥ 1); got {len(images)} images, "
            f"{len(targets)} targets and {len(keys)} keys"
        )
    if region is not None and region.masks is not None and _per_image(region.masks) != _per_image(images):
        raise ValueError(
            f"need a region mask (B, 1, H, W) of each image's size; got masks {tuple(region.masks.shape)} for "
            f"images {tuple(images.shape)}"
        )
    images, targets = images.to(backbone.device), targets.to(backbone.device)
    terms = ldce_terms(config, classifier, distance_features) + list(extra_terms)
    run = _Run(backbone, classifier, config, terms, seed, record_steps, callback)
    size = micro_batch_size or len(keys)
    results = []
    for begin in range(0, len(keys), size):
        group = list(range(begin, min(begin + size, len(keys))))
        padded = group + group[-1:] * (size - len(group))
        group_noise = None if noise is None else noise[padded]
        group_region = None if region is None else region.rows(padded)
        result = _explain_group(
            run, images[padded], targets[padded], [keys[i] for i in padded], group_noise, group_region
        )
        results.append(result.head(len(group)))
    return Counterfactuals.cat(results)
