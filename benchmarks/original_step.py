"""The original implementation (lmb-freiburg/ldce) against ldce, per guided step, on the golden tiny model.

Both run in ONE process on the same weights (``../shared/golden``: ``tiny_cin_ldm.*``,
``tiny_classifier.safetensors``) and inputs (``ldce_run.safetensors``: ``image01``, targets, start
noise) at ``ldce_run.json``'s settings (20 DDIM steps, strength 0.5 → 10 guided steps, batch 4,
projected / zero_binning consensus), on CPU with ``--threads`` (2) intra-op threads. The original is
driven as its ``scripts/ldce.py`` drives it: ``get_model`` loads the checkpoint, a ``CCMDDIMSampler``
with the run's options, ``make_schedule``, ``init_images``, the first-stage encoding, then
``generate_samples``. ldce runs ``ldce.method.explain.explain`` with ``config_of(ldce_run.json)``,
once per variant (``plain``, ``contiguous_attention``, ``joint_halves``, ``compile``, ``compile_channels_last``;
see ``step_cost.VARIANTS``). With ``compile`` the warm-up round compiles: the column ``first run s``.

The implementations are interleaved (original, each ldce variant, original, …) for ``--repeats``
rounds after one warm-up round, so load on the shared machine hits all alike. Per round it records
each guided step's wall time (the original's ``CCMDDIMSampler.p_sample_ddim``, ldce's
``ldce.method.sampler.denoise_step``, each wrapped by a timer) and the whole run (the original:
encode + ``generate_samples``; ldce: ``explain``). It prints medians and min/max, the speed-up
original/ldce, the final latents' agreement (max |Δ| relative to max |golden latent|) with the
golden ``samples_latent`` and with the original run here, and with ``--profile`` a per-step
comparison of self CPU time per operator (torch.profiler over whole runs, divided by the number of
guided steps, the least loaded of ``--profile-runs`` runs each; the one-off encode and final decode
are included on both sides; ``--by-shape`` splits each operator by its input shapes, which tells the
decoder's calls (image-sized, batch B) from the noise model's (latent-sized, B or 2B)).

Prepare the original's checkout and a separate virtual environment (never the project's venv)::

    git clone https://github.com/lmb-freiburg/ldce /tmp/orig-ldce   # commit 6519597 was measured
    bash benchmarks/original_env.sh /tmp/orig-venv                   # torch 2.14.1 + the original's deps + ldce

A snapshot without ``data/*.p`` serves as well: the original imports only ``data/imagenet_classnames.py``
from ``data/`` (through ``ldm/models/diffusion/cc_ddim.py``); e.g. from a bare git directory ``G``::

    mkdir -p /tmp/orig-ldce/data
    git --git-dir=G archive HEAD -- . ':(exclude)data' | tar -x -C /tmp/orig-ldce
    git --git-dir=G show HEAD:data/imagenet_classnames.py > /tmp/orig-ldce/data/imagenet_classnames.py

The original's sampler ends the run when one DDIM iteration takes over 6 s (a heavily loaded machine);
the script then says so. The original reproduces the golden latent bitwise with 2 threads (the golden
run's), not with another ``--threads``. With ``compile``, the first run (``first run s``) compiles:
minutes with an empty inductor cache, seconds once the cache holds the graphs.

Run (from the repository root)::

    PYTHONPATH=$PWD /tmp/orig-venv/bin/python benchmarks/original_step.py --original /tmp/orig-ldce \\
        --repeats 20 --profile

Runtime shims (the original's files are not edited):
- ``clip`` and ``kornia``: stub modules in ``sys.modules`` (imported by ``ldm.modules.encoders.modules``
  for the CLIP embedders only, which a class-conditional model never builds);
- ``pytorch_lightning.utilities.distributed``: an alias module giving ``rank_zero_only`` from its
  pytorch-lightning ≥ 1.8 home ``pytorch_lightning.utilities.rank_zero``;
- ``CCMDDIMSampler.register_buffer``: keeps the schedule tensors where they are (CPU) instead of
  moving them to ``"cuda"``; values and dtypes unchanged;
- ``model.get_learned_conditioning``: wrapped on the instance to map the label 1000 that
  ``generate_samples`` hard-codes as the null class (cin256-v2's) to the tiny model's null class 10.
As in the original's driver, its LDM and classifier are in eval mode but not frozen (their parameters
require grad; ldce's are frozen), and the sampler keeps ``record_intermediate_results`` and
``verbose`` of ``ldce_run.json`` (both true). The original's output goes to /dev/null (its ``print``
and tqdm lines). ``taming-transformers-rom1504`` provides ``VectorQuantizer2``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy
import torch
from safetensors.torch import load_file
from step_cost import VARIANTS
from torch.profiler import ProfilerActivity, profile

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.speedups import apply_speedups
from ldce.method import sampler as ldce_sampler
from ldce.method.explain import explain
from ldce.testing.golden import config_of, tiny_classifier
from ldce.testing.models import small_cnn

ORIGINAL_NULL_LABEL = 1000
"""The null class ``generate_samples`` hard-codes (cin256-v2's)."""


def import_original(checkout: Path) -> types.SimpleNamespace:
    """The original's ``sampling_helpers`` and ``CCMDDIMSampler``, imported from ``checkout`` with the shims."""
    for name in ("clip", "kornia"):
        sys.modules.setdefault(name, types.ModuleType(name))
    from pytorch_lightning.utilities import rank_zero

    alias = types.ModuleType("pytorch_lightning.utilities.distributed")
    alias.rank_zero_only = rank_zero.rank_zero_only
    sys.modules["pytorch_lightning.utilities.distributed"] = alias
    sys.path.insert(0, str(checkout))
    import sampling_helpers
    from ldm.models.diffusion.cc_ddim import CCMDDIMSampler

    CCMDDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)
    return types.SimpleNamespace(helpers=sampling_helpers, sampler_class=CCMDDIMSampler)


def load_original_model(original: types.SimpleNamespace, golden: Path, null_class: int) -> torch.nn.Module:
    """The golden LDM through the original's ``get_model`` (a ``{"state_dict": …}`` checkpoint written from
    the golden safetensors), its null label mapped to ``null_class``."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "tiny_cin_ldm.ckpt"
        torch.save({"state_dict": load_file(str(golden / "tiny_cin_ldm.safetensors"))}, checkpoint)
        with _silenced():
            model = original.helpers.get_model(str(golden / "tiny_cin_ldm.yaml"), str(checkpoint)).eval()
    learned = model.get_learned_conditioning

    def conditioning(labels: dict[str, torch.Tensor]) -> torch.Tensor:
        return learned({key: torch.where(y == ORIGINAL_NULL_LABEL, null_class, y) for key, y in labels.items()})

    model.get_learned_conditioning = conditioning
    return model


def original_classifier(golden: Path, original: types.SimpleNamespace) -> torch.nn.Module:
    """The golden classifier as the original's driver holds it: eval mode, ``train`` disabled, not frozen."""
    net = small_cnn(10)
    net.load_state_dict(load_file(str(golden / "tiny_classifier.safetensors")))
    net.eval()
    net.train = original.helpers.disabled_train
    return net


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


@contextlib.contextmanager
def step_timer(owner: object, name: str, times: list[float]) -> Iterator[list[object]]:
    """Replace ``owner.name`` by a wrapper appending each call's wall seconds to ``times``; yields the
    list of the calls' results (the last is the final step's)."""
    inner, results = getattr(owner, name), []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = inner(*args, **kwargs)
        times.append(time.perf_counter() - start)
        results.append(result)
        return result

    setattr(owner, name, timed)
    try:
        yield results
    finally:
        setattr(owner, name, inner)


@contextlib.contextmanager
def _original_guard() -> Iterator[None]:
    """The original's sampler ends the process (``sys.exit(1)``, its message silenced here) when one DDIM
    iteration takes over 6 s, as on a heavily loaded machine: say so instead of exiting silently."""
    try:
        yield
    except SystemExit as exit_:
        raise SystemExit(
            "the original's sampler stopped the run (its limit: 6 s per DDIM iteration; the machine is too "
            "busy for --threads here: retry on a quieter machine or with --threads 1)"
        ) from exit_


def original_runner(original, model, classifier, run: dict[str, torch.Tensor], meta: dict) -> Callable:
    """One whole original run per call, as ``scripts/ldce.py`` drives it; the call records step times into
    its argument and returns the final latent (B, C, h, w)."""
    options = meta["sampler"]
    sampler = original.sampler_class(
        model,
        classifier,
        classifier_wrapper=meta["classifier_wrapper"],
        record_intermediate_results=meta["record_intermediate_results"],
        verbose=meta["verbose"],
        **options,
    )
    with _silenced():
        sampler.make_schedule(ddim_num_steps=meta["ddim_steps"], ddim_eta=meta["ddim_eta"], verbose=False)
    image01, targets = run["image01"], run["target_y"]

    def once(times: list[float]) -> torch.Tensor:
        with _silenced(), step_timer(sampler, "p_sample_ddim", times) as results:
            seed_everything(meta["seed"])
            sampler.init_images = image01
            with torch.no_grad():
                init_latent = model.get_first_stage_encoding(model.encode_first_stage(2 * image01 - 1))
            with _original_guard():
                original.helpers.generate_samples(
                    model,
                    sampler,
                    targets,
                    meta["ddim_steps"],
                    meta["scale"],
                    init_image=image01,
                    t_enc=meta["t_enc"],
                    init_latent=init_latent,
                    ccdddim=True,
                    ddim_eta=meta["ddim_eta"],
                    latent_t_0=meta["latent_t_0"],
                    seed=meta["seed"],
                )
        return results[-1][0]

    return once


def seed_everything(seed: int) -> None:
    """What the original driver's ``set_seed`` seeds: torch, numpy and ``random``."""
    torch.manual_seed(seed)
    numpy.random.seed(seed)
    random.seed(seed)


def ldce_runner(backbone, classifier, run: dict[str, torch.Tensor], config) -> Callable:
    """One whole ldce run (``explain``) per call; records step times, returns the final latent."""

    def once(times: list[float]) -> torch.Tensor:
        with step_timer(ldce_sampler, "denoise_step", times):
            return explain(run["image01"], run["target_y"], backbone, classifier, config, noise=run["noise"]).latents

    return once


def interleaved(runners: dict[str, Callable], repeats: int) -> tuple[dict, dict, dict]:
    """Per runner: every guided step's seconds (rounds 1…repeats), every whole run's seconds (round 0, the
    warm-up, first: with ``compile`` it includes compiling) and the final latent of the last run."""
    steps = {name: [] for name in runners}
    runs = {name: [] for name in runners}
    latents = {}
    for round_ in range(repeats + 1):
        for name, once in runners.items():
            times: list[float] = []
            start = time.perf_counter()
            latents[name] = once(times).detach()
            elapsed = time.perf_counter() - start
            runs[name].append(elapsed)
            if round_:
                steps[name] += times
    return steps, runs, latents


def spread(values: list[float], scale: float = 1000.0) -> str:
    """``median [min, max]`` of ``values × scale``."""
    return f"{scale * statistics.median(values):7.1f} [{scale * min(values):6.1f}, {scale * max(values):6.1f}]"


def profile_table(runners: dict[str, Callable], steps: int, rows: int, runs: int, by_shape: bool) -> str:
    """Self CPU ms per guided step by operator (``by_shape``: by operator and input shapes), original vs each
    ldce variant, sorted by |difference|: the top ``rows`` per ldce variant, then each side's total. Each
    implementation is profiled over ``runs`` whole runs (interleaved); the run with the least total self
    CPU time is kept (load spikes only add time)."""
    per_step: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        for name, once in runners.items():
            with profile(activities=[ProfilerActivity.CPU], record_shapes=by_shape) as prof:
                once([])
            ops = {
                f"{e.key} {e.input_shapes}" if by_shape else e.key: e.self_cpu_time_total / 1000 / steps
                for e in prof.key_averages(group_by_input_shape=by_shape)
            }
            if name not in per_step or sum(ops.values()) < sum(per_step[name].values()):
                per_step[name] = ops
    original, lines, width = per_step.pop("original"), [], 100 if by_shape else 50
    for name, ops in per_step.items():
        lines.append(f"\n## original vs ldce {name}: self CPU ms per guided step (whole run / {steps})")
        lines.append(f"{'op':<{width}} {'original':>9} {'ldce':>9} {'ldce−orig':>10}")
        keys = sorted(set(original) | set(ops), key=lambda k: -abs(ops.get(k, 0.0) - original.get(k, 0.0)))
        for key in keys[:rows]:
            mine, theirs = ops.get(key, 0.0), original.get(key, 0.0)
            lines.append(f"{key[:width]:<{width}} {theirs:9.2f} {mine:9.2f} {mine - theirs:+10.2f}")
        lines.append(f"{'total':<{width}} {sum(original.values()):9.2f} {sum(ops.values()):9.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, required=True, help="checkout of lmb-freiburg/ldce")
    parser.add_argument("--golden", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "golden")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["plain", "contiguous_attention", "joint_halves", "compile", "compile_channels_last"],
    )
    parser.add_argument("--profile", action="store_true", help="also print the per-operator comparison")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--by-shape", action="store_true", help="profile rows per operator and input shapes")
    parser.add_argument("--profile-runs", type=int, default=3, help="profiled runs each; the least loaded is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    golden, meta = args.golden, json.loads((args.golden / "ldce_run.json").read_text())
    run = load_file(str(golden / "ldce_run.safetensors"))
    original = import_original(args.original.resolve())
    model = load_original_model(original, golden, meta["null_class"])
    runners = {"original": original_runner(original, model, original_classifier(golden, original), run, meta)}
    plain = ClassConditionalLDM.from_compvis(golden / "tiny_cin_ldm.safetensors", golden / "tiny_cin_ldm.yaml")
    classifier = tiny_classifier(golden)
    for variant in args.variants:
        speedups, overrides = VARIANTS[variant]
        backbone = apply_speedups(copy.deepcopy(plain), speedups)
        config = dataclasses.replace(config_of(meta), **overrides)
        runners[variant] = ldce_runner(backbone, classifier, run, config)
    steps, runs, latents = interleaved(runners, args.repeats)
    guided = meta["t_enc"]
    print(
        f"# CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {len(run['image01'])}, "
        f"{guided} guided steps per run, {args.repeats} interleaved rounds after a warm-up"
    )
    width = max(len(name) for name in runners)
    print(
        f"{'implementation':<{width}} {'ms/step median [min, max]':>27} {'run ms/step':>12} {'orig/this':>10} "
        f"{'first run s':>12}  latent"
    )
    expected = run["samples_latent"]
    scale = expected.abs().max().item()
    base = statistics.median(steps["original"])
    for name in runners:
        agreement = (latents[name] - expected).abs().max().item() / scale
        versus = (latents[name] - latents["original"]).abs().max().item() / scale
        print(
            f"{name:<{width}} {spread(steps[name]):>27} {1000 * statistics.median(runs[name][1:]) / guided:12.1f} "
            f"{base / statistics.median(steps[name]):9.2f}× {runs[name][0]:12.1f}  "
            f"rel max|Δ| vs golden {agreement:.1e}, vs original here {versus:.1e}"
        )
    if args.profile:
        print(profile_table(runners, guided, args.profile_rows, args.profile_runs, args.by_shape))


if __name__ == "__main__":
    main()
