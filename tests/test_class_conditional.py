"""ClassConditionalLDM and the CompVis → diffusers conversion, against the original's golden vectors.

Tolerance for float tensors: ``max|ours − golden| ≤ 1e-5 · max|golden|`` (float32, CPU); codebook
indices, class rows and the schedule must be exactly equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from ldce.backbones import compvis, ldm_config
from ldce.backbones.base import linear_alphas_cumprod
from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.checkpoints import CheckpointError, check_fits
from ldce.testing.golden import tiny_classifier
from ldce.testing.models import tiny_class_conditional_ldm

RTOL = 1e-5


@pytest.fixture(scope="module")
def files(golden_dir: Path) -> tuple[Path, Path]:
    return golden_dir / "tiny_cin_ldm.safetensors", golden_dir / "tiny_cin_ldm.yaml"


@pytest.fixture(scope="module")
def model(files) -> ClassConditionalLDM:
    return ClassConditionalLDM.from_compvis(*files)


@pytest.fixture(scope="module")
def units(golden_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(golden_dir / "units.safetensors"))


@pytest.fixture(scope="module")
def classifier(golden_dir: Path) -> nn.Module:
    return tiny_classifier(golden_dir)


def assert_matches(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """``max|a − e| ≤ RTOL · max|e|``; the message carries both differences."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    diff, scale = (actual - expected).abs().max().item(), expected.abs().max().item()
    assert diff <= RTOL * scale, f"{name}: max abs diff {diff:.3e}, relative {diff / scale:.3e}"


def grad_wrt(z: torch.Tensor, loss_of) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    return torch.autograd.grad(loss_of(z), z)[0]


def test_schedule_is_the_checkpoint_buffer_and_the_linear_formula(model, units, files):
    """``abar`` equals the checkpoint buffer bitwise, and the recomputation from the yaml to 1e-7."""
    assert torch.equal(model.alphas_cumprod, units["alphas_cumprod"])
    params = yaml.safe_load(files[1].read_text())["model"]["params"]
    recomputed = linear_alphas_cumprod(params["linear_start"], params["linear_end"], params["timesteps"])
    assert (recomputed - units["alphas_cumprod"]).abs().max() < 1e-7
    assert model.scale_factor == 1.0 and model.image_size == 32 and model.null_class == 10


def test_encode_is_the_pre_quantisation_latent(model, units):
    """``encode(x01)`` = original ``z0`` (encoder + quant_conv, not quantised)."""
    with torch.no_grad():
        assert_matches(model.encode(units["x01"]), units["z0"], "z0")


@pytest.mark.parametrize("latent, indices", [("z0", "z0_code_idx"), ("z", "z_code_idx")])
def test_codebook_indices_are_identical(model, units, latent, indices):
    """The quantiser's argmin (original distance formula) picks exactly the original's codes."""
    z_q, index = model.quantize(units[latent])
    assert torch.equal(index, units[indices])
    assert torch.equal(z_q, model.first_stage.quantize.embedding.weight[index].permute(0, 3, 1, 2))


@pytest.mark.parametrize("latent, decoded", [("z0", "x_rec"), ("z", "dec_z")])
def test_decode_quantises_then_decodes(model, units, latent, decoded):
    """``decode(z) · 2 − 1`` = original ``decode_first_stage(z)`` (VQ straight-through + decoder)."""
    with torch.no_grad():
        assert_matches(model.decode(units[latent]) * 2 - 1, units[decoded], decoded)


def test_conditioning_is_one_token_per_class_with_the_last_row_null(model, units):
    """``c``/``uc`` are the class rows as (B, 1, D), bitwise equal; the null row is the last one."""
    cond, null = model.conditioning(units["y"])
    assert torch.equal(cond, units["c"]) and torch.equal(null, units["uc"])


@pytest.mark.parametrize("bad", [[10], [-1], [3, 11]])
def test_conditioning_rejects_classes_outside_the_table(model, bad):
    """Targets must be real classes in [0, null): the null row and out-of-range rows are refused."""
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.conditioning(torch.tensor(bad))


def test_eps_matches_the_original_unet(model, units):
    """``eps(z, t, c)`` and ``eps(z, t, uc)`` equal the original ``apply_model`` outputs."""
    cond, null = model.conditioning(units["y"])
    with torch.no_grad():
        assert_matches(model.eps(units["z"], units["t"], cond), units["eps_cond"], "eps_cond")
        assert_matches(model.eps(units["z"], units["t"], null), units["eps_uncond"], "eps_uncond")


def test_unet_gradient_matches(model, units):
    """∂/∂z Σ w·eps(z, t, c) equals the original's UNet backward."""
    cond, _ = model.conditioning(units["y"])
    grad = grad_wrt(units["z"], lambda z: (units["unet_probe_w"] * model.eps(z, units["t"], cond)).sum())
    assert_matches(grad, units["grad_z_unet_probe"], "grad_z_unet_probe")


def test_decoder_gradients_pass_the_straight_through_quantiser(model, units, classifier):
    """∂/∂z of the L1 distance and of Σ log p(y | decode(z)) equal the original's."""
    x01, y = units["x01"], units["y"][:, None]
    l1 = lambda z: (model.decode(z).clamp(0, 1) - x01).abs().sum()  # noqa: E731
    log_p = lambda z: torch.log_softmax(classifier(model.decode(z)), 1).gather(1, y).sum()  # noqa: E731
    assert_matches(grad_wrt(units["z"], l1), units["grad_z_l1"], "grad_z_l1")
    assert_matches(grad_wrt(units["z"], log_p), units["grad_z_logp_y"], "grad_z_logp_y")


def test_wrapped_torch_checkpoint_loads_like_safetensors(model, files, units, tmp_path):
    """A ``.ckpt`` holding ``{"state_dict": …}`` converts to the same model."""
    torch.save({"state_dict": load_file(str(files[0]))}, tmp_path / "model.ckpt")
    other = ClassConditionalLDM.from_compvis(tmp_path / "model.ckpt", files[1])
    cond, _ = model.conditioning(units["y"])
    with torch.no_grad():
        assert torch.equal(other.eps(units["z"], units["t"], cond), model.eps(units["z"], units["t"], cond))


@pytest.mark.parametrize(
    "edit, named",
    [
        (
            lambda sd: sd.update({"model.diffusion_model.extra.weight": torch.ones(2)}),
            "model.diffusion_model.extra.weight",
        ),
        (lambda sd: sd.update({"unknown.key": torch.ones(2)}), "unknown.key"),
        (
            lambda sd: sd.pop("model.diffusion_model.middle_block.1.proj_in.weight"),
            "mid_block.attentions.0.proj_in.weight",
        ),
        (lambda sd: sd.pop("first_stage_model.quantize.embedding.weight"), "quantize.embedding.weight"),
        (lambda sd: sd.pop("cond_stage_model.embedding.weight"), "cond_stage_model.embedding.weight"),
    ],
)
def test_every_source_key_is_consumed_and_every_target_filled(files, tmp_path, edit, named):
    """An extra or a missing key fails, naming the file and the key (source or diffusers name)."""
    state = load_file(str(files[0]))
    edit(state)
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=str(path)) as err:
        ClassConditionalLDM.from_compvis(path, files[1])
    assert named in str(err.value)


def test_wrong_architecture_fails_naming_the_file(files, tmp_path):
    """The golden weights with a yaml of another UNet (attention at level 0 too) are refused."""
    config = yaml.safe_load(files[1].read_text())
    config["model"]["params"]["unet_config"]["params"]["attention_resolutions"] = [1, 2]
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match=str(files[0])):
        ClassConditionalLDM.from_compvis(files[0], path)


def test_text_conditional_config_is_refused(files, tmp_path):
    """A yaml whose cond stage is not a ClassEmbedder fails before the checkpoint is read."""
    config = yaml.safe_load(files[1].read_text())
    config["model"]["params"]["cond_stage_config"]["target"] = "ldm.modules.encoders.modules.FrozenCLIPEmbedder"
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match=f"{path}.*ClassEmbedder"):
        ClassConditionalLDM.from_compvis(files[0], path)


@pytest.mark.parametrize("which", ["checkpoint", "config"])
def test_missing_file_error_names_it(files, tmp_path, which):
    """A missing checkpoint or yaml raises FileNotFoundError naming the path."""
    missing = tmp_path / f"absent.{'ckpt' if which == 'checkpoint' else 'yaml'}"
    args = (missing, files[1]) if which == "checkpoint" else (files[0], missing)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        ClassConditionalLDM.from_compvis(*args)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_truncated_file_error_names_it(files, tmp_path, suffix):
    """A truncated checkpoint (either format) raises CheckpointError naming the file."""
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": load_file(str(files[0]))}, whole)
    else:
        whole.write_bytes(files[0].read_bytes())
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(truncated)):
        ClassConditionalLDM.from_compvis(truncated, files[1])


def test_ema_weights_are_used_when_asked(files, units, model, tmp_path):
    """``use_ema=True`` reads ``model_ema.*`` (LitEma names); without it those keys are ignored."""
    state = load_file(str(files[0]))
    for key in [k for k in state if k.startswith(compvis.UNET_PREFIX)]:
        state["model_ema." + "".join(key.split(".")[1:])] = state[key].clone()
        state[key] = torch.zeros_like(state[key])
    state["model_ema.decay"], state["model_ema.num_updates"] = torch.tensor(0.9999), torch.tensor(7, dtype=torch.int32)
    path = tmp_path / "ema.safetensors"
    save_file(state, str(path))
    cond, _ = model.conditioning(units["y"])
    with torch.no_grad():
        ema = ClassConditionalLDM.from_compvis(path, files[1], use_ema=True).eps(units["z"], units["t"], cond)
        plain = ClassConditionalLDM.from_compvis(path, files[1]).eps(units["z"], units["t"], cond)
        assert torch.equal(ema, model.eps(units["z"], units["t"], cond))
    assert not torch.allclose(plain, ema)


def test_cache_round_trip_gives_identical_eps_and_skips_conversion(files, units, model, tmp_path, monkeypatch):
    """``from_compvis(cache_dir=…)`` writes a diffusers copy once; reloads give bitwise equal eps."""
    cache = tmp_path / "cache"
    first = ClassConditionalLDM.from_compvis(*files, cache_dir=cache)
    assert json.loads((cache / "ldce_backbone.json").read_text())["first_stage"] == "vq"

    monkeypatch.setattr(compvis, "convert_compvis_state_dict", None)  # a second conversion would fail
    cond, null = model.conditioning(units["y"])
    with torch.no_grad():
        for loaded in (
            first,
            ClassConditionalLDM.from_compvis(*files, cache_dir=cache),
            ClassConditionalLDM.from_pretrained(cache),
        ):
            assert torch.equal(loaded.eps(units["z"], units["t"], cond), model.eps(units["z"], units["t"], cond))
            assert torch.equal(loaded.decode(units["z"]), model.decode(units["z"]))
            assert torch.equal(loaded.conditioning(units["y"])[1], null)
            assert torch.equal(loaded.alphas_cumprod, model.alphas_cumprod)


CIN256_V2 = {  # model.params of the real cin256-v2 yaml (configs/latent-diffusion/cin256-v2.yaml)
    "linear_start": 0.0015,
    "linear_end": 0.0195,
    "timesteps": 1000,
    "conditioning_key": "crossattn",
    "unet_config": {
        "target": ldm_config.UNET_TARGET,
        "params": {
            "image_size": 64,
            "in_channels": 3,
            "out_channels": 3,
            "model_channels": 192,
            "attention_resolutions": [8, 4, 2],
            "num_res_blocks": 2,
            "channel_mult": [1, 2, 3, 5],
            "num_heads": 1,
            "use_spatial_transformer": True,
            "transformer_depth": 1,
            "context_dim": 512,
        },
    },
    "first_stage_config": {
        "target": ldm_config.VQ_TARGETS[0],
        "params": {
            "embed_dim": 3,
            "n_embed": 8192,
            "ddconfig": {
                "double_z": False,
                "z_channels": 3,
                "resolution": 256,
                "in_channels": 3,
                "out_ch": 3,
                "ch": 128,
                "ch_mult": [1, 2, 4],
                "num_res_blocks": 2,
                "attn_resolutions": [],
                "dropout": 0.0,
            },
        },
    },
    "cond_stage_config": {"target": ldm_config.CLASS_EMBEDDER_TARGET, "params": {"n_classes": 1001, "embed_dim": 512}},
}


SD_V1_KL = {
    "target": ldm_config.KL_TARGET,
    "params": {
        "embed_dim": 4,
        "ddconfig": {  # SD v1's first stage
            "double_z": True,
            "z_channels": 4,
            "resolution": 256,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 128,
            "ch_mult": [1, 2, 4, 4],
            "num_res_blocks": 2,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    },
}


@pytest.mark.parametrize("first_stage", ["vq", "kl"])
def test_real_size_layouts_convert_completely(golden_dir, first_stage):
    """Every key of the real cin256-v2 state dict (manifest shapes) is consumed and fits diffusers;
    with "kl", its VQ first stage is swapped for SD v1's KL autoencoder (sd_v1 manifest)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, VQModel

    shapes = json.loads((golden_dir / "cin256v2_manifest.json").read_text())["state_dict"]
    params = CIN256_V2
    if first_stage == "kl":
        sd_shapes = json.loads((golden_dir / "sd_v1_manifest.json").read_text())["state_dict"]
        shapes = {k: v for k, v in shapes.items() if not k.startswith(compvis.FIRST_STAGE_PREFIX)}
        shapes |= {k: v for k, v in sd_shapes.items() if k.startswith(compvis.FIRST_STAGE_PREFIX)}
        params = {**CIN256_V2, "first_stage_config": SD_V1_KL, "scale_factor": 0.18215}
    pool = torch.zeros(len(shapes))  # one element per key: distinct data pointers, no real memory
    state = {key: pool[i].expand(shape) for i, (key, shape) in enumerate(shapes.items())}
    spec = ldm_config.ldm_spec(params, "cin256-v2")
    converted = compvis.convert_compvis_state_dict(state, spec, "manifest")
    with torch.device("meta"):
        unet = UNet2DConditionModel(**spec.unet_config)
        stage = (VQModel if first_stage == "vq" else AutoencoderKL)(**spec.first_stage_config)
    check_fits(unet, converted.unet_state, "unet", "UNet")
    check_fits(stage, converted.first_stage_state, first_stage, "first stage")
    assert spec.unet_config["attention_head_dim"] == [1, 1, 1, 1]
    assert spec.unet_config["down_block_types"][0] == "DownBlock2D"
    assert converted.class_table.shape == (1001, 512)
    assert converted.scale_factor == (1.0 if first_stage == "vq" else 0.18215)


def test_cache_never_overwrites_a_foreign_folder(files, tmp_path):
    """``cache_dir`` pointing at a non-empty folder that is not a cache is refused, not deleted."""
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        ClassConditionalLDM.from_compvis(*files, cache_dir=tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("first_stage", ["vq", "kl"])
def test_tiny_model_runs_with_gradients_to_the_latent(first_stage):
    """``tiny()`` encodes 32×32 images to 3×8×8, decodes back, predicts eps; gradients reach z."""
    model = tiny_class_conditional_ldm(num_classes=10, first_stage=first_stage)
    images = torch.rand(2, 3, 32, 32)
    z = model.encode(images, noise=torch.randn(2, 3, 8, 8)).requires_grad_(True)
    assert z.shape == (2, 3, 8, 8) and model.null_class == 10
    cond, null = model.conditioning(torch.tensor([0, 9]))
    eps = model.eps(z, torch.tensor([999, 1]), torch.cat([cond[:1], null[1:]]))
    loss = model.decode(z - eps).square().sum()
    grad = torch.autograd.grad(loss, z)[0]
    assert model.decode(z).shape == (2, 3, 32, 32) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    if first_stage == "kl":
        assert not torch.equal(model.encode(images), model.encode(images, noise=torch.randn(2, 3, 8, 8)))
