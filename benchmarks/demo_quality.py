"""How good are the demo's counterfactuals? LDCE with and without consensus vs. baselines.

    python benchmarks/demo_quality.py                              # demo shard (64) + held-out slice (200)
    python benchmarks/demo_quality.py --heldout 0 --ddim_steps 100  # demo shard only, other settings

The hyperparameters are those of ``configs/quickstart.yaml`` unless overridden.

Rows: LDCE with consensus guidance (zero_binning), LDCE without consensus (``unprojected``: the
raw classifier score), classifier-free guidance only (``free``), a pixel-space gradient attack
on the explained classifier with the same per-image L1 budget as LDCE's counterfactual, and
region-constrained LDCE (``ldce.method.region``) with the settings of ``configs/quickstart_minimal.yaml``
(consensus; its method differs from the quickstart's only in ``classifier_lambda``, so plain LDCE runs
at that weight too), the same with the ``gradient`` source, with the garment's silhouette as a ``given``
region, and with the composite only (no blending while denoising).
A last row is no method but a reference: for each input, a real test image of its target class (from
index 8000 on, disjoint from the inputs) scored as its counterfactual — the judge-space FID a set of
perfect counterfactuals would have (its L1, L2 and changed pixels compare unrelated images).
The ``segmentation`` source has no row: no CLIPSeg weights are available offline.
Columns: flip rate on the explained classifier (over the images it does not already call the target,
as ``ldce.metrics.FlipRate``); agreement of the *independent* classifier with
the target; mean L1 / L2 distance; share of counterfactuals the independent classifier still
calls the source class; COUT with the explained classifier; and the Fréchet distance between
originals and counterfactuals in the *independent classifier's* penultimate feature space (not
Inception FID). The independent classifier never guides anything: it judges whether a
counterfactual looks like the target to another model, or only fools the explained one. The last
column is the share of pixels changed by more than 8/255 in some channel.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import torch
import yaml
from demo_judging import Row, flip_rate, quickstart_config
from torch import Tensor

from ldce import demo
from ldce.classifiers.names import class_name
from ldce.datamodules.fashion_mnist import DEBIAN_ROOT, load_split
from ldce.method.config import LDCEConfig
from ldce.method.explain import explain
from ldce.method.region import RegionConfig, RegionInputs

log = logging.getLogger(__name__)


WIDTHS = (9, 13, 15, 7, 6, 6, 11, 8)


def pgd_l1(classifier: torch.nn.Module, images: Tensor, targets: Tensor, budget: Tensor, steps: int = 60) -> Tensor:
    """Targeted pixel attack: ascend ``log p(y_t | x + δ)`` with ``||δ||_1 ≤ budget`` per image, x + δ ∈ [0, 1].

    Steps follow the L1-normalised gradient and project back onto the L1 ball (Duchi et al. 2008).
    images: ``(B, 3, H, W)``; targets, budget: ``(B,)``.
    """
    delta = torch.zeros_like(images)
    step = (budget / 10).view(-1, 1, 1, 1)
    for _ in range(steps):
        delta.requires_grad_(True)
        log_p = torch.log_softmax(classifier((images + delta).clamp(0, 1)), 1).gather(1, targets[:, None]).sum()
        (grad,) = torch.autograd.grad(log_p, delta)
        with torch.no_grad():
            delta = delta + step * grad / grad.flatten(1).abs().sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = project_l1(delta, budget)
            delta = (images + delta).clamp(0, 1) - images
    return (images + delta).detach()


def project_l1(delta: Tensor, radius: Tensor) -> Tensor:
    """Euclidean projection of each ``δ`` onto ``{||δ||_1 ≤ radius}``: ``(B, …) → (B, …)``."""
    flat = delta.flatten(1)
    inside = flat.abs().sum(1) <= radius
    magnitudes, _ = flat.abs().sort(1, descending=True)
    cumulative = magnitudes.cumsum(1)
    ranks = torch.arange(1, flat.shape[1] + 1, device=flat.device)
    valid = magnitudes * ranks > cumulative - radius[:, None]
    count = valid.sum(1).clamp_min(1)
    theta = ((cumulative.gather(1, (count - 1)[:, None]).squeeze(1) - radius) / count).clamp_min(0)
    projected = flat.sign() * (flat.abs() - theta[:, None]).clamp_min(0)
    return torch.where(inside[:, None], flat, projected).view_as(delta)


def silhouette(images: Tensor) -> Tensor:
    """The ``given`` region of the demo: the garment's silhouette (any channel above 0.05), grown by one
    pixel, ``(B, 1, H, W)``."""
    inside = (images.amax(1, keepdim=True) > 0.05).float()
    return torch.nn.functional.max_pool2d(inside, 3, stride=1, padding=1)


class RealTargets:
    """Real test images of the target classes, each used once, from index ``start`` on."""

    def __init__(self, start: int = 8000) -> None:
        self.images, self.labels = load_split(DEBIAN_ROOT, "test")
        self.start, self.used = start, {}

    def __call__(self, targets: Tensor) -> Tensor:
        """``(B, 3, 32, 32)`` in [0, 1]: for each target the next unused test image of its class."""
        picked = []
        for target in targets.tolist():
            count = self.used.get(target, 0)
            self.used[target] = count + 1
            picked.append(int((self.labels[self.start :] == target).nonzero()[count]) + self.start)
        return self.images[picked]


def region_variants(region: RegionConfig) -> dict[str, RegionConfig]:
    """The region rows: ``region`` (``configs/quickstart_minimal.yaml``'s) and the same with each other source."""
    return {
        f"region: {region.source}": region,
        "region: gradient": dataclasses.replace(region, source="gradient", share=0.25),
        "region: given (silhouette)": dataclasses.replace(region, source="given", threshold=0.5),
        "composite only (consensus)": dataclasses.replace(region, blend=False),
    }


def run_rows(
    batches, config: LDCEConfig, minimal: LDCEConfig, region: RegionConfig, seed: int
) -> dict[str, dict[str, Tensor]]:
    """Every row's scores; ``minimal``: the method settings of the region rows."""
    backbone, explained, judge = demo.backbone(), demo.classifier(), demo.independent_classifier()
    features = demo.judge_features()
    variants = {
        "LDCE (consensus)": config,
        "LDCE (no consensus)": dataclasses.replace(config, guidance="unprojected"),
        "CFG only": dataclasses.replace(config, guidance="free"),
    }
    if minimal != config:
        variants[f"LDCE (λc {minimal.classifier_lambda:g})"] = minimal
    regions = region_variants(region)
    reference, real_targets = "real images of the target", RealTargets()
    names = [*variants, "pixel attack (same L1)", *regions, reference]
    rows = {name: Row(explained, judge, features) for name in names}
    for keys, images, sources, targets in batches:
        ldce_l1 = None
        for name, variant in variants.items():
            result = explain(images, targets, backbone, explained, variant, seed=seed, keys=keys)
            rows[name].update(images, result.images, sources, targets)
            ldce_l1 = result.l1 if ldce_l1 is None else ldce_l1
        attacked = pgd_l1(explained, images, targets, ldce_l1)
        rows["pixel attack (same L1)"].update(images, attacked, sources, targets)
        for name, settings in regions.items():
            inputs = RegionInputs(settings, silhouette(images) if settings.source == "given" else None)
            result = explain(images, targets, backbone, explained, minimal, seed=seed, keys=keys, region=inputs)
            rows[name].update(images, result.images, sources, targets)
        rows[reference].update(images, real_targets(targets), sources, targets)
    return {name: row.summary() for name, row in rows.items()}


def region_config(path: Path) -> RegionConfig:
    """The region settings (``model.region``) of a ``ldce predict`` config."""
    return RegionConfig(**yaml.safe_load(path.read_text())["model"]["region"])


def table(title: str, rows: dict[str, dict[str, Tensor]]) -> str:
    first = next(iter(rows.values()))
    count, already = len(first["flip"]), int((1 - first["open"]).sum())
    columns = ("flip rate", "indep. agrees", "indep. = source", "L1", "L2", "COUT", "FID (judge)", "changed")
    name_width = max(26, *(len(name) for name in rows))
    header = f"{'method':<{name_width}} " + " ".join(
        f"{name:>{width}}" for name, width in zip(columns, WIDTHS, strict=True)
    )
    lines = [
        f"{title} ({count} images; flip rate over the {count - already} not already called the target)",
        header,
    ]
    for name, s in rows.items():
        rate = flip_rate(s)
        lines.append(
            f"{name:<{name_width}} {rate:>9.1%} {s['agree'].mean():>13.1%} {s['source'].mean():>15.1%} "
            f"{s['l1'].mean():>7.1f} {s['l2'].mean():>6.2f} {float(s['cout']):>6.3f} {float(s['fid']):>11.2f} "
            f"{s['changed'].mean():>8.1%}"
        )
    return "\n".join(lines)


def pairs_text() -> str:
    """The demo's source → target pairs by name."""
    return ", ".join(
        f"{class_name(demo.CLASS_NAMES, s)} → {class_name(demo.CLASS_NAMES, t)}" for s, t in demo.TARGETS.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--heldout", type=int, default=25, help="held-out test images per source class (0: demo shard only)"
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    configs = Path(__file__).resolve().parents[1] / "configs"
    parser.add_argument("--config", type=Path, default=configs / "quickstart.yaml")
    parser.add_argument("--region_config", type=Path, default=configs / "quickstart_minimal.yaml")
    for field in dataclasses.fields(LDCEConfig):
        kind = type(field.default)
        parse = yaml.safe_load if field.default is None else kind  # an optional field: its value as YAML
        parser.add_argument(
            f"--{field.name}",
            type=(lambda text: text.lower() in ("1", "true", "yes")) if kind is bool else parse,
            default=None,
        )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(LDCEConfig) if getattr(args, f.name) is not None
    }
    config = dataclasses.replace(quickstart_config(args.config), **overrides)
    log.info("config: %s", config)
    minimal = dataclasses.replace(quickstart_config(args.region_config), **overrides)
    region = region_config(args.region_config)
    sets = {"demo shard": demo.demo_batches(args.batch_size)}
    if args.heldout:
        sets["held-out test slice"] = demo.heldout_batches(args.heldout, args.batch_size)
    for title, batches in sets.items():
        start = time.perf_counter()
        rows = run_rows(batches, config, minimal, region, args.seed)
        print(table(title, rows))
        print(f"({time.perf_counter() - start:.0f} s; source → target pairs: {pairs_text()})\n")


if __name__ == "__main__":
    main()
