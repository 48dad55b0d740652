"""Max abs / rel differences between ldce and the original implementation's golden vectors.

python benchmarks/golden_parity.py [--golden ../shared/golden]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.method.explain import explain
from ldce.testing.golden import RUNS, config_of, tiny_classifier


def difference(actual: torch.Tensor, expected: torch.Tensor) -> str:
    abs_diff = (actual - expected).abs().max().item()
    return f"max abs {abs_diff:.2e}  (max |expected| {expected.abs().max().item():.2e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--golden", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "golden")
    golden = parser.parse_args().golden
    backbone = ClassConditionalLDM.from_compvis(
        golden / "tiny_cin_ldm.safetensors", golden / "tiny_cin_ldm.yaml"
    ).eval()
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
