"""Two vector–Jacobian products through one network: two backward passes over a ``B`` graph, or one
over a graph built on ``2B`` copies (``[z; z]``, cotangents ``[v₁; v₂]``).

LDCE needs ``Jᵀv`` for two cotangents per step (classifier and distance term), through the decoder and
the unconditional noise model. Stacking pays where a call costs about the same at ``B`` and ``2B``
(small tensors) and loses where the cost grows with the batch (the decoder's forward then also runs on
``2B``). On the golden tiny model (``../shared/golden``), CPU::

    python benchmarks/stacked_vjp.py [--golden ../shared/golden] [--compile] [--rounds 25]

Prints the median milliseconds of forward + both products, per network and way, the four timed in
turn (the first 3 rounds are warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.speedups import Speedups, apply_speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "golden")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = ClassConditionalLDM.from_compvis(
        args.golden / "tiny_cin_ldm.safetensors", args.golden / "tiny_cin_ldm.yaml"
    )
    backbone = apply_speedups(backbone, Speedups(compile=args.compile))
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, 8, 8, generator=generator)  # (B, C, h, w): the golden model's latent
    t, (_, null) = torch.full((4,), 500), backbone.conditioning(torch.tensor([1, 3, 5, 7]))
    image_vectors = torch.randn(2, 4, 3, 32, 32, generator=generator)  # (K, B, 3, H, W)
    latent_vectors = torch.randn(2, 4, 3, 8, 8, generator=generator)  # (K, B, C, h, w)
    networks = {
        "decoder": (lambda latents: backbone.decode(latents), image_vectors),
        "noise model": (
            lambda latents: backbone.eps(latents, t.repeat(len(latents) // 4), null.repeat(len(latents) // 4, 1, 1)),
            latent_vectors,
        ),
    }

    def separate(network, vectors) -> None:
        leaf = z.clone().requires_grad_(True)
        output = network(leaf)
        torch.autograd.grad(output, leaf, vectors[0], retain_graph=True)
        torch.autograd.grad(output, leaf, vectors[1])

    def stacked(network, vectors) -> None:
        leaf = torch.cat([z, z]).requires_grad_(True)
        torch.autograd.grad(network(leaf), leaf, vectors.flatten(0, 1))

    ways = {(name, way.__name__): (way, *pair) for name, pair in networks.items() for way in (separate, stacked)}
    times: dict[tuple[str, str], list[float]] = {key: [] for key in ways}
    for round_ in range(args.rounds + 3):
        for key, (way, network, vectors) in ways.items():
            start = time.perf_counter()
            way(network, vectors)
            if round_ >= 3:
                times[key].append(time.perf_counter() - start)
    print(f"# CPU, {torch.get_num_threads()} threads, B = 4, compile {args.compile}, medians of {args.rounds}")
    for (name, way), values in times.items():
        print(f"{name:<12} {way:<9} {1000 * statistics.median(values):7.1f} ms")


if __name__ == "__main__":
    main()
