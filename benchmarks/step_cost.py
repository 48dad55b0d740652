"""Where one guided step's time goes: ldce's step vs. its irreducible parts vs. the original's structure.

    python benchmarks/step_cost.py --models tiny mid --batch 4                      # CPU
    python benchmarks/step_cost.py --device cuda --models cin256 sd256 dit256 --batch 4 --precision bf16 \\
        --variants plain batched_vjp channels_last compile checkpointing

For each model (random weights; see ``benchmarks/models.py``) it measures, in one process:
- ``step``: one ldce guided step (``ldce.method.sampler.guided_step``, projected consensus guidance);
- the parts, each alone: the noise model's forward on 2B latents, the decoder's forward on B, the
  classifier's forward and backward on B, and the two vector–Jacobian products through decoder and
  unconditional noise model (backward passes only) — ``step / Σparts`` is the overhead (goal ≤ 1.1);
- ``reference``: the same step computed the way the original code does it (an autograd graph over
  both halves of the 2B forward, one backward per loss with the graph kept) — ``reference / step``
  is the speed-up (goal ≥ 2×); both give the same latent (checked);
- peak accelerator memory per image (CUDA only);
- seconds per counterfactual at the paper's settings: ``step × --paper-steps / B`` (500 DDIM steps at
  strength 0.382 are 191 guided steps), for ldce and, with ``plain``, for the original's structure.
Each model is built once (random weights) and copied for every variant. Times are medians over
``--repeats`` after one warm-up (with ``compile``, the warm-up also compiles). ``--interleaved`` times
only the step, the variants in turn (before/after comparisons on a shared machine):

    python benchmarks/step_cost.py --models tiny demo mid --batch 4 --interleaved --repeats 15 \
        --variants plain contiguous_attention joint_halves
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable

import torch
from models import build

from ldce.backbones.speedups import Speedups, apply_speedups
from ldce.classifiers import target_log_likelihood
from ldce.method.config import LDCEConfig
from ldce.method.guided import predicted_clean_latent
from ldce.method.sampler import guided_step
from ldce.method.schedule import ddim_grid
from ldce.method.terms import Task
from ldce.testing.reference import reference_step

VARIANTS = {
    "plain": (Speedups(), {}),
    "batched_vjp": (Speedups(), {"batched_vjp": True}),
    "channels_last": (Speedups(channels_last=True), {}),
    "classic_attention": (Speedups(attention="classic"), {}),
    "checkpointing": (Speedups(gradient_checkpointing=True), {}),
    "compile": (Speedups(compile=True), {}),
    "joint_halves": (Speedups(), {"halves": "joint"}),
    "contiguous_attention": (Speedups(contiguous_attention=True), {}),
    "compile_channels_last": (Speedups(compile=True, channels_last=True), {}),
    "stacked_noise_vjp": (Speedups(), {"stacked_noise_vjp": True}),
    "compile_channels_last_stacked": (Speedups(compile=True, channels_last=True), {"stacked_noise_vjp": True}),
    "compile_channels_last_stacked_joint": (
        Speedups(compile=True, channels_last=True),
        {"stacked_noise_vjp": True, "halves": "joint"},
    ),
    "compile_cpp_channels_last_stacked_joint": (
        Speedups(compile=True, cpp_wrapper=True, channels_last=True),
        {"stacked_noise_vjp": True, "halves": "joint"},
    ),
}
"""Each variant: the backbone's speed switches and ``LDCEConfig`` overrides. ``plain`` is the default."""
PART_NAMES = {"eps2B": "eps 2B", "dec": "decode B", "clf": "classifier fwd+bwd", "VJPs": "2 VJPs"}
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parts(backbone, classifier, z, index, grid, task, repeats, device) -> dict[str, float]:
    alpha, t = grid.alphas[index], grid.timesteps[index].expand(z.shape[0])
    with torch.no_grad():
        clean = predicted_clean_latent(z, backbone.eps(z, t, task.null), alpha)
        image = backbone.decode(clean)
    leaf = z.detach().requires_grad_(True)
    graph_image = backbone.decode(predicted_clean_latent(leaf, backbone.eps(leaf, t, task.null), alpha))
    v = torch.randn_like(graph_image)

    def classifier_pass():
        probe = image.detach().requires_grad_(True)
        torch.autograd.grad(target_log_likelihood(classifier(probe), task.targets).sum(), probe)

    def two_vjps():
        torch.autograd.grad(graph_image, leaf, v, retain_graph=True)
        torch.autograd.grad(graph_image, leaf, v, retain_graph=True)

    with torch.no_grad():
        results = {
            "eps 2B": timed(
                lambda: backbone.eps(torch.cat([z, z]), torch.cat([t, t]), torch.cat([task.null, task.cond])),
                repeats,
                device,
            ),
            "decode B": timed(lambda: backbone.decode(clean), repeats, device),
        }
    results["classifier fwd+bwd"] = timed(classifier_pass, repeats, device)
    results["2 VJPs"] = timed(two_vjps, repeats, device)
    return results


def setup(name: str, batch: int, device: torch.device):
    """The model pair on ``device`` (initialised there: fast for real sizes), a batch of random images,
    its latents and the task."""
    with device:
        backbone, classifier = build(name)
    backbone, classifier = backbone.to(device), classifier.to(device)
    size = backbone.image_size
    images = torch.rand(batch, 3, size, size, device=device)
    targets = torch.arange(batch, device=device) % 10
    with torch.no_grad():
        z = backbone.encode(images)
        cond, null = backbone.conditioning(targets)
    grid = ddim_grid(backbone.alphas_cumprod, 500).to(device)
    return backbone, classifier, z, grid, Task(images, targets, cond, null)


def measure(models, device: torch.device, precision: str, variant: str, repeats: int) -> dict[str, object]:
    """One row: ldce's step with ``variant``; with ``plain`` also the parts and the original's structure."""
    speedups, overrides = VARIANTS[variant]
    plain, classifier, z, grid, task = models
    backbone = apply_speedups(copy.deepcopy(plain), speedups)
    config = dataclasses.replace(LDCEConfig(), **overrides)
    autocast = torch.autocast(device.type, DTYPES[precision]) if DTYPES[precision] else contextlib.nullcontext()
    row: dict[str, object] = {"batch": z.shape[0], "precision": precision, "variant": variant}
    with autocast:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            resident = torch.cuda.memory_allocated()
        row["step"] = timed(lambda: guided_step(backbone, classifier, z, 190, grid, task, config), repeats, device)
        if device.type == "cuda":
            row["peak GiB/image"] = (torch.cuda.max_memory_allocated() - resident) / 2**30 / z.shape[0]
        if variant == "plain":
            row.update(parts(backbone, classifier, z, 190, grid, task, repeats, device))
            row["reference"] = timed(
                lambda: reference_step(backbone, classifier, z, 190, grid, task, config), repeats, device
            )
            ours, theirs = (
                guided_step(backbone, classifier, z, 190, grid, task, config)[0],
                reference_step(backbone, classifier, z, 190, grid, task, config),
            )
            row["max |Δ| vs reference"] = (ours - theirs).abs().max().item()
    return row


def interleaved(models, device: torch.device, variants: list[str], repeats: int) -> dict[str, float]:
    """Median float32 step time per variant, the variants timed in turn, ``repeats`` rounds after a warm-up:
    drift of a shared machine weighs on every variant alike."""
    plain, classifier, z, grid, task = models
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = {}
    for variant in variants:
        speedups, overrides = VARIANTS[variant]
        backbone, config = (
            apply_speedups(copy.deepcopy(plain), speedups),
            dataclasses.replace(LDCEConfig(), **overrides),
        )
        steps[variant] = functools.partial(guided_step, backbone, classifier, z, 190, grid, task, config)
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_ in range(repeats + 1):
        for variant, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            if round_:
                times[variant].append(time.perf_counter() - start)
    return {variant: statistics.median(values) for variant, values in times.items()}


def report(name: str, row: dict[str, object], paper_steps: int) -> str:
    """One line: step time, seconds per counterfactual at ``paper_steps`` steps, parts and reference."""
    per_cf = paper_steps / row["batch"]
    step = row["step"]
    text = f"{name:<7} B={row['batch']} {row['precision']:<4} {row['variant']:<17} "
    text += f"step {1000 * step:8.1f} ms ({step * per_cf:.1f} s/cf)"
    if "reference" in row:
        total = row["eps 2B"] + row["decode B"] + row["classifier fwd+bwd"] + row["2 VJPs"]
        shares = ", ".join(f"{short} {1000 * row[part]:.1f}" for short, part in PART_NAMES.items())
        text += f" | Σparts {1000 * total:8.1f} ms ({shares})"
        reference = row["reference"]
        text += (
            f" | step/Σparts {step / total:.2f} | reference {1000 * reference:.1f} ms ({reference * per_cf:.1f} s/cf)"
        )
        text += f", speed-up {reference / step:.2f}× | max|Δ| {row['max |Δ| vs reference']:.1e}"
    if "peak GiB/image" in row:
        text += f" | peak {row['peak GiB/image']:.2f} GiB/image above weights"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "mid"])
    parser.add_argument("--batch", type=int, nargs="+", default=[4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", choices=sorted(DTYPES), default=["fp32"])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["plain", "batched_vjp"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--paper-steps", type=int, default=191, help="guided steps per counterfactual for s/cf (default: 500 × 0.382)"
    )
    parser.add_argument(
        "--interleaved", action="store_true", help="only the step of each variant, timed in turn (fp32)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"# {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    for name in args.models:
        for batch in args.batch:
            models = setup(name, batch, device)
            if args.interleaved:
                medians = interleaved(models, device, args.variants, args.repeats)
                print(f"{name} B={batch} " + " | ".join(f"{v} {1000 * t:.1f} ms" for v, t in medians.items()))
                continue
            for precision in args.precision:
                for variant in args.variants:
                    print(
                        report(name, measure(models, device, precision, variant, args.repeats), args.paper_steps),
                        flush=True,
                    )
            del models
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
