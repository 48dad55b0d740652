"""Max abs / rel differences between ldce and the original implementation's golden vectors.

    python benchmarks/golden_parity.py [--golden ../shared/golden]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.config import LDCEConfig
from ldce.explain import explain

RUNS = ("ldce_run", "ldce_run_guidance_free", "ldce_run_cone_default_PATCHED")


def tiny_classifier(golden: Path) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    net.load_state_dict(load_file(str(golden / "tiny_classifier.safetensors")))
    return net.eval().requires_grad_(False)


def difference(actual: torch.Tensor, expected: torch.Tensor) -> str:
    abs_diff = (actual - expected).abs().max().item()
    return f"max abs {abs_diff:.2e}  (max |expected| {expected.abs().max().item():.2e})"


def config_of(meta: dict) -> LDCEConfig:
    s = meta["sampler"]
    return LDCEConfig(
        strength=meta["strength"], ddim_steps=meta["ddim_steps"], ddim_eta=meta["ddim_eta"], scale=meta["scale"],
        classifier_lambda=s["classifier_lambda"], dist_lambda=s["dist_lambda"], deg_cone_projection=s["deg_cone_projection"],
        lp_custom=s["lp_custom"], guidance=s["guidance"], cone_projection_type=s["cone_projection_type"], enforce_same_norms=s["enforce_same_norms"],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--golden", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "golden")
    golden = parser.parse_args().golden
    backbone = ClassConditionalLDM.from_compvis(golden / "tiny_cin_ldm.safetensors", golden / "tiny_cin_ldm.yaml").eval()
    classifier = tiny_classifier(golden)
    units = load_file(str(golden / "units.safetensors"))
    with torch.no_grad():
        cond, null = backbone.conditioning(units["y"])
        rows = {
            "z0": difference(backbone.encode(units["x01"]), units["z0"]),
            "decode(z)": difference(backbone.decode(units["z"]), (units["dec_z"] + 1) / 2),
            "eps_cond": difference(backbone.eps(units["z"], units["t"], cond), units["eps_cond"]),
            "eps_uncond": difference(backbone.eps(units["z"], units["t"], null), units["eps_uncond"]),
        }
    for name in RUNS:
        run = load_file(str(golden / f"{name}.safetensors"))
        meta = json.loads((golden / f"{name}.json").read_text())
        result = explain(run["image01"], run["target_y"], backbone, classifier, config_of(meta), noise=run["noise"])
        rows[f"{name}: final latent"] = difference(result.latents, run["samples_latent"])
        rows[f"{name}: counterfactual"] = difference(result.images, run["counterfactual_01"])
    width = max(map(len, rows))
    for name, text in rows.items():
        print(f"{name:<{width}}  {text}")


if __name__ == "__main__":
    main()
