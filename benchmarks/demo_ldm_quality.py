"""Quality of the demo LDM (``ldce/demo/weights/fashion_ldm``): reconstructions and class-conditional samples.

    OMP_NUM_THREADS=1 python benchmarks/demo_ldm_quality.py            # ~5 min on one shared CPU core

1. Reconstruction of the 10,000 Fashion-MNIST test images, ``x̂ = clamp(D(E(2x − 1)) …)`` with
   the posterior mode: MSE and PSNR in [0, 1] pixel space.
2. ``num_samples`` samples, classes in turn, by plain DDIM (η = 0, ``ldce.schedule.ddim_grid``
   with ``steps`` steps, from pure noise at the last grid point) with classifier-free guidance
   ``ê = e_u + scale·(e_c − e_u)``.
3. Fréchet distances to the real test images — NOT Inception FIDs, and not comparable to any
   published number: in the space of the first ``pca_components`` principal components of the
   training pixels, and of the penultimate features of each demo classifier that exists. For
   scale, the same distance of ``num_samples`` real training images and of the reconstructions is
   reported next to it.
4. The accuracy of each demo classifier whose weights exist (the explained classifier, the independent judge)
   on the samples w.r.t. their conditioning class, next to its accuracy on real test images and
   reconstructions.

Writes a JSON of the numbers and a PNG grid (one row per class, ``grid_columns`` samples, 2× enlarged).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import save_image

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.datamodules.fashion_mnist import CLASS_NAMES, DEBIAN_ROOT, load_split
from ldce.demo.models import accuracy, load
from ldce.method.sampler import ddim_update
from ldce.method.schedule import ddim_grid
from ldce.metrics.features import PenultimateFeatures
from ldce.metrics.frechet import fid_of
from ldce.training.autoencoder import psnr

log = logging.getLogger("demo_ldm_quality")
RESULTS = Path(__file__).resolve().parent / "results"
CLASSIFIERS = ("ldce/demo/weights/classifier/model.safetensors", "ldce/demo/weights/independent/model.safetensors")


@torch.no_grad()
def sample(ldm: ClassConditionalLDM, labels: Tensor, steps: int, scale: float, generator: torch.Generator) -> Tensor:
    """DDIM (η = 0) with classifier-free guidance: images ``(B, 3, H, W)`` in [0, 1] for ``labels (B,)``.

    Per grid index ``i = S−1 … 0``: ``(e_u, e_c) = eps([z, z], τ_i, [u, c])`` (one 2B forward),
    ``ê = e_u + scale·(e_c − e_u)``, ``z ← √a_prev·(z − √(1−a)·ê)/√a + √(1 − a_prev)·ê``.
    """
    grid = ddim_grid(ldm.alphas_cumprod, steps)
    cond, null = ldm.conditioning(labels)
    size = ldm.unet.config.sample_size
    z = torch.randn(len(labels), ldm.unet.config.in_channels, size, size, generator=generator)
    for i in reversed(range(steps)):
        t = grid.timesteps[i].repeat(2 * len(labels))
        e_u, e_c = ldm.eps(torch.cat([z, z]), t, torch.cat([null, cond])).chunk(2)
        z = ddim_update(z, e_u + scale * (e_c - e_u), grid.alphas[i], grid.alphas_prev[i], grid.sigmas[i], None)
    return ldm.decode(z).clamp(0, 1)


@torch.no_grad()
def batched(function: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = 500) -> Tensor:
    """``function`` over ``images`` in batches, concatenated."""
    return torch.cat([function(part) for part in images.split(batch_size)])


def pca_basis(images: Tensor, components: int) -> tuple[Tensor, Tensor]:
    """Mean ``(P,)`` and the top ``components`` principal directions ``(P, k)`` of flattened grey images."""
    pixels = images[:, 0].flatten(1).double()
    mean = pixels.mean(0)
    _, _, vectors = torch.linalg.svd(pixels - mean, full_matrices=False)
    return mean, vectors[:components].T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ldm", default="ldce/demo/weights/fashion_ldm")
    parser.add_argument(
        "--classifiers",
        nargs="*",
        default=list(CLASSIFIERS),
        help="demo classifier weights (ldce.demo.models.load); absent ones are skipped",
    )
    parser.add_argument("--data_root", default=DEBIAN_ROOT)
    parser.add_argument("--num_samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--pca_components", type=int, default=64)
    parser.add_argument("--grid_columns", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS / "demo_ldm_quality.json"))
    parser.add_argument("--grid", default=str(RESULTS / "demo_ldm_samples.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    ldm = ClassConditionalLDM.from_pretrained(args.ldm)
    test_images, test_labels = load_split(args.data_root, "test")
    train_images = load_split(args.data_root, "train")[0][
        torch.randperm(60000, generator=torch.Generator().manual_seed(args.seed))[:10000]
    ]
    reconstructions = batched(lambda x: ldm.decode(ldm.encode(x)).clamp(0, 1), test_images)
    results = {
        "ldm": args.ldm,
        "args": vars(args),
        "scale_factor": ldm.scale_factor,
        "reconstruction": {
            "mse": (reconstructions - test_images).square().mean().item(),
            "psnr_db": psnr(reconstructions, test_images).mean().item(),
        },
    }
    log.info("test reconstruction: %s", results["reconstruction"])

    generator = torch.Generator().manual_seed(args.seed)
    labels = torch.arange(args.num_samples) % len(CLASS_NAMES)
    samples = torch.cat(
        [sample(ldm, part, args.steps, args.scale, generator) for part in labels.split(args.batch_size)]
    )
    columns = min(args.grid_columns, args.num_samples // len(CLASS_NAMES))
    rows = torch.cat([samples[labels == c][:columns] for c in range(len(CLASS_NAMES))])
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.nn.functional.interpolate(rows, scale_factor=2), args.grid, nrow=columns, padding=2, pad_value=0.5)

    mean, basis = pca_basis(train_images, args.pca_components)
    spaces: dict[str, Callable[[Tensor], Tensor]] = {
        f"pixel_pca{args.pca_components}": lambda x: (x[:, 0].flatten(1).double() - mean) @ basis
    }
    for path in map(Path, args.classifiers):
        if not path.is_file():
            log.warning("no classifier at %s: its accuracy and feature distance are skipped", path)
            continue
        classifier, name = load(path), path.parent.name
        results.setdefault("classifier_accuracy", {})[name] = {
            "samples_vs_conditioning_class": accuracy(classifier, samples, labels),
            "real_test": accuracy(classifier, test_images, test_labels),
            "reconstructed_test": accuracy(classifier, reconstructions, test_labels),
        }
        spaces[f"{name}_penultimate"] = PenultimateFeatures(classifier)
    compared = {
        "samples": samples,
        f"real_train_{args.num_samples}": train_images[: args.num_samples],
        "reconstructed_test": reconstructions,
    }
    distances = results["frechet_distance_to_test_NOT_inception_fid"] = {}
    for name, features in spaces.items():
        real = batched(features, test_images)
        distances[name] = {what: fid_of(real, batched(features, images)).item() for what, images in compared.items()}
    Path(args.output).write_text(json.dumps(results, indent=2))
    log.info("%s", json.dumps({k: v for k, v in results.items() if k != "args"}, indent=2))
    log.info("wrote %s and %s", args.output, args.grid)


if __name__ == "__main__":
    main()
