"""Stable Diffusion and DiT backbones: the Backbone contract on tiny random models, local
save/load round trips, original SD single-file checkpoints, and offline-only loading."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from diffusers import AutoencoderKL, DDIMScheduler, Transformer2DModel, UNet2DConditionModel
from sd_original_format import original_state_dict, save_clip, write_original_sd

from ldce.backbones.base import linear_alphas_cumprod
from ldce.backbones.dit import DiT
from ldce.backbones.ldm_config import first_stage_config_from_ldm, unet_config_from_ldm
from ldce.backbones.sd_original import V1_INFERENCE_CONFIG, read_sd_config, sd_scheduler_config
from ldce.backbones.stable_diffusion import SD_SCHEDULER_CONFIG, StableDiffusion
from ldce.checkpoints import CheckpointError
from ldce.testing.models import tiny_dit, tiny_stable_diffusion

CLASSES = ["tench", "goldfish", "great white shark"]
T = torch.tensor([10, 500])


def build(kind: str, seed: int = 0):
    return tiny_stable_diffusion(CLASSES, seed=seed) if kind == "sd" else tiny_dit(num_classes=len(CLASSES), seed=seed)


@pytest.fixture(scope="module", params=["sd", "dit"])
def backbone(request):
    return build(request.param)


@pytest.fixture(scope="module")
def sd():
    return tiny_stable_diffusion(CLASSES)


@pytest.fixture
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def outputs(model, images):
    """Everything a backbone computes from fixed inputs: encodings, decode, conditioning, eps."""
    z = model.encode(images)
    cond, null = model.conditioning(torch.tensor([0, 2]))
    return {
        "z": z,
        "decoded": model.decode(z),
        "cond": cond,
        "null": null,
        "eps": model.eps(z, T, cond),
        "alphas_cumprod": model.alphas_cumprod,
    }


def assert_same_outputs(a, b, images):
    for (name, x), y in zip(outputs(a, images).items(), outputs(b, images).values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_first_stage_is_s_times_kl_posterior_of_2x_minus_1_and_decodes_back_to_image_shape(backbone, images):
    """encode: z0 = s·mean(E(2x−1)) (mode) or s·(mean + std·ξ); decode: (D(z/s)+1)/2, image shape."""
    posterior = backbone.vae.encode(2 * images - 1).latent_dist
    noise = torch.randn_like(posterior.mean)
    z = backbone.encode(images)
    assert z.shape == (2, 4, 8, 8) and backbone.image_size == 32 and backbone.scale_factor == 0.18215
    torch.testing.assert_close(z, 0.18215 * posterior.mean)
    torch.testing.assert_close(backbone.encode(images, noise), 0.18215 * (posterior.mean + posterior.std * noise))
    decoded = backbone.decode(z)
    assert decoded.shape == images.shape and torch.isfinite(decoded).all()
    torch.testing.assert_close(decoded, (backbone.vae.decode(z / 0.18215).sample + 1) / 2)
    with pytest.raises(ValueError, match="latent shape"):
        backbone.encode(images, noise[:, :2])


def test_eps_has_latent_shape_and_dit_keeps_the_first_c_channels_of_learned_sigma(backbone, images):
    z = backbone.encode(images)
    cond, _ = backbone.conditioning(torch.tensor([1, 2]))
    eps = backbone.eps(z, T, cond)
    assert eps.shape == z.shape and torch.isfinite(eps).all()
    if isinstance(backbone, DiT):
        full = backbone.transformer(z, timestep=T, class_labels=cond).sample
        assert full.shape[1] == 8 and torch.equal(eps, full[:, :4])


def test_gradients_of_decoded_image_and_eps_losses_reach_the_latents_and_parameters_stay_frozen(backbone, images):
    z = backbone.encode(images).requires_grad_(True)
    cond, null = backbone.conditioning(torch.tensor([0, 1]))
    for loss in (backbone.decode(z).square().sum(), backbone.eps(z, T, null).square().sum()):
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not any(p.requires_grad for p in backbone.parameters())


def test_sd_conditioning_is_clip_last_hidden_state_of_prompts_and_of_the_empty_prompt(sd):
    cond, null = sd.conditioning(torch.tensor([0, 2, 0]))
    assert cond.shape == null.shape == (3, 77, 32)
    assert sd.prompts(torch.tensor([2])) == ["a photo of a great white shark."]
    torch.testing.assert_close(
        cond, sd.embed_prompts(["a photo of a tench.", "a photo of a great white shark.", "a photo of a tench."])
    )
    torch.testing.assert_close(null, sd.embed_prompts([""]).expand(3, -1, -1))
    assert not torch.allclose(cond[0], cond[1]) and torch.equal(cond[0], cond[2])
    assert not torch.allclose(cond[0], null[0])


def test_sd_prompt_template_and_null_prompt_are_configurable():
    model = tiny_stable_diffusion(["smiling", "non-smiling"], prompt_template="a photo of a {} person", null_prompt="x")
    assert model.prompts(torch.tensor([1])) == ["a photo of a non-smiling person"]
    torch.testing.assert_close(model.conditioning(torch.tensor([0]))[1], model.embed_prompts(["x"]))
    with pytest.raises(ValueError, match="prompt_template"):
        tiny_stable_diffusion(CLASSES, prompt_template="a photo")


def test_dit_conditioning_is_target_labels_and_null_label_num_classes():
    dit = tiny_dit(num_classes=3)
    cond, null = dit.conditioning(torch.tensor([0, 2]))
    assert cond.tolist() == [0, 2] and null.tolist() == [3, 3] and null.dtype == torch.long
    z = torch.randn(2, 4, 8, 8)
    assert not torch.allclose(dit.eps(z, T, cond), dit.eps(z, T, null))


@pytest.mark.parametrize(
    "targets", [torch.tensor([0, 3]), torch.tensor([-1]), torch.tensor([0.0]), torch.tensor([[0]])]
)
def test_invalid_targets_raise_naming_the_problem(backbone, targets):
    with pytest.raises(ValueError, match=r"\[0, 3\)|1-D integer"):
        backbone.conditioning(targets)


def test_schedules_sd_scaled_linear_and_dit_linear_match_diffusers(sd):
    torch.testing.assert_close(sd.alphas_cumprod, linear_alphas_cumprod(0.00085, 0.012), rtol=0, atol=0)
    dit = tiny_dit()
    expected = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()
    torch.testing.assert_close(dit.alphas_cumprod, expected, rtol=0, atol=0)
    for model in (sd, dit):
        reference = DDIMScheduler(**model.scheduler_config).alphas_cumprod
        torch.testing.assert_close(model.alphas_cumprod, reference, rtol=1e-5, atol=1e-6)


def test_train_mode_is_refused_so_dit_never_drops_labels():
    dit = tiny_dit()
    z = torch.randn(2, 4, 8, 8)
    before = dit.eps(z, T, torch.tensor([0, 1]))
    dit.train()
    assert not any(m.training for m in dit.modules())
    assert torch.equal(dit.eps(z, T, torch.tensor([0, 1])), before)


def test_save_pretrained_then_from_pretrained_gives_identical_outputs(backbone, images, tmp_path, no_network):
    backbone.save_pretrained(tmp_path)
    if isinstance(backbone, StableDiffusion):
        loaded = StableDiffusion.from_pretrained(tmp_path, CLASSES)
    else:
        loaded = DiT.from_pretrained(tmp_path)
    assert loaded.scheduler_config == backbone.scheduler_config and loaded.image_size == backbone.image_size
    assert_same_outputs(backbone, loaded, images)


def test_from_pretrained_takes_the_schedule_from_the_folders_scheduler_config(sd, tmp_path):
    sd.save_pretrained(tmp_path)
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(
            {"_class_name": "PNDMScheduler", "beta_start": 0.001, "beta_end": 0.02, "beta_schedule": "scaled_linear"}
        )
    )
    loaded = StableDiffusion.from_pretrained(tmp_path, CLASSES)
    torch.testing.assert_close(loaded.alphas_cumprod, linear_alphas_cumprod(0.001, 0.02), rtol=0, atol=0)


def test_dit_from_pretrained_reads_the_hubs_legacy_transformer2dmodel_layout(images, tmp_path):
    """facebook/DiT-XL-2-256 stores the transformer as a ``Transformer2DModel`` config."""
    dit = tiny_dit()
    legacy = Transformer2DModel(**{k: v for k, v in dit.transformer.config.items() if not k.startswith("_")})
    legacy.load_state_dict(dit.transformer.state_dict())
    dit.save_pretrained(tmp_path)
    legacy.save_pretrained(tmp_path / "transformer")
    assert json.loads((tmp_path / "transformer" / "config.json").read_text())["_class_name"] == "Transformer2DModel"
    assert_same_outputs(dit, DiT.from_pretrained(tmp_path), images)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_from_single_file_reproduces_the_model_including_the_checkpoints_clip_weights(
    sd, images, tmp_path, suffix, no_network
):
    """UNet, VAE and schedule from the checkpoint + yaml; CLIP weights from the checkpoint, although
    the CLIP folder holds another seed's."""
    checkpoint, config = write_original_sd(sd, tmp_path, suffix)
    clip = save_clip(tiny_stable_diffusion(CLASSES, seed=1), tmp_path / "clip")
    loaded = StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES)
    assert loaded.scheduler_config == sd.scheduler_config and loaded.image_size == sd.image_size
    assert_same_outputs(sd, loaded, images)


def test_from_single_file_agrees_with_diffusers_own_single_file_loader_given_the_local_yaml(sd, tmp_path, no_network):
    """Same UNet and VAE as ``X.from_single_file(ckpt, original_config=yaml, local_files_only=True)``,
    which ldce does not use: it drops unknown tensors with a warning and guesses 512 px."""
    checkpoint, config = write_original_sd(sd, tmp_path)
    loaded = StableDiffusion.from_single_file(checkpoint, config, save_clip(sd, tmp_path / "clip"), CLASSES)
    options = {"original_config": str(config), "local_files_only": True}
    unet = UNet2DConditionModel.from_single_file(str(checkpoint), **options)
    vae = AutoencoderKL.from_single_file(str(checkpoint), **options)
    z, cond = torch.randn(2, 4, 8, 8), sd.conditioning(torch.tensor([0, 1]))[0]
    torch.testing.assert_close(loaded.eps(z, T, cond), unet(z, T, encoder_hidden_states=cond).sample, rtol=0, atol=0)
    torch.testing.assert_close(loaded.decode(z), (vae.decode(z / 0.18215).sample + 1) / 2, rtol=0, atol=0)


def test_from_single_file_without_clip_weights_uses_the_clip_folder(sd, images, tmp_path):
    checkpoint, config = write_original_sd(sd, tmp_path, text=False)
    other = tiny_stable_diffusion(CLASSES, seed=1)
    loaded = StableDiffusion.from_single_file(checkpoint, config, save_clip(other, tmp_path / "clip"), CLASSES)
    targets = torch.tensor([0, 1])
    torch.testing.assert_close(loaded.conditioning(targets), other.conditioning(targets), rtol=0, atol=0)
    z = sd.encode(images)
    cond = sd.conditioning(targets)[0]
    torch.testing.assert_close(loaded.eps(z, T, cond), sd.eps(z, T, cond), rtol=0, atol=0)


def test_from_single_file_use_ema_takes_the_unet_from_model_ema(sd, images, tmp_path):
    ema = tiny_stable_diffusion(CLASSES, seed=2)
    flat = {
        "model_ema." + "".join(k.split(".")[1:]): v
        for k, v in original_state_dict(ema.unet, ema.vae).items()
        if k.startswith("model.diffusion_model.")
    }
    checkpoint, config = write_original_sd(sd, tmp_path, extra=flat | {"model_ema.decay": torch.tensor(0.9999)})
    clip = save_clip(sd, tmp_path / "clip")
    z, cond = sd.encode(images), sd.conditioning(torch.tensor([0, 1]))[0]
    for use_ema, source in ((True, ema), (False, sd)):
        loaded = StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES, use_ema=use_ema)
        torch.testing.assert_close(loaded.eps(z, T, cond), source.eps(z, T, cond), rtol=0, atol=0)


def test_from_single_file_rejects_a_config_or_checkpoint_that_do_not_match(sd, tmp_path):
    checkpoint, config = write_original_sd(sd, tmp_path, extra={"model.diffusion_model.extra.weight": torch.zeros(1)})
    clip = save_clip(sd, tmp_path / "clip")
    with pytest.raises(CheckpointError, match="not consumed.*model.diffusion_model.extra.weight"):
        StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES)
    checkpoint, config = write_original_sd(sd, tmp_path)
    wrong = yaml.safe_load(config.read_text())
    wrong["model"]["params"]["unet_config"]["params"]["num_res_blocks"] = 2
    config.write_text(yaml.safe_dump(wrong))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES)
    wrong["model"]["params"]["cond_stage_config"]["target"] = "ldm.modules.encoders.modules.ClassEmbedder"
    config.write_text(yaml.safe_dump(wrong))
    with pytest.raises(CheckpointError, match="expected Stable Diffusion 1.x"):
        StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES)


def test_packaged_v1_inference_yaml_is_sd_v1_at_512_px_with_sds_schedule():
    params = read_sd_config(V1_INFERENCE_CONFIG)
    assert params["image_size"] * 8 == 512 and params["scale_factor"] == 0.18215
    assert sd_scheduler_config(params) == SD_SCHEDULER_CONFIG


def test_packaged_yaml_and_test_key_mapping_give_the_real_sd_v1_names_and_shapes(golden_dir):
    """A full-size SD v1 UNet and VAE (meta tensors) from the packaged yaml, written in the original
    format by the test helper, have exactly the key names and shapes of a real SD v1 checkpoint."""
    manifest = json.loads((golden_dir / "sd_v1_manifest.json").read_text())["state_dict"]
    params = read_sd_config(V1_INFERENCE_CONFIG)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**{**unet_config_from_ldm(params, "v1"), "sample_size": params["image_size"]})
        vae = AutoencoderKL(**first_stage_config_from_ldm(params, "v1")[1])
    ours = {k: list(v.shape) for k, v in original_state_dict(unet, vae).items()}
    assert ours == {k: v for k, v in manifest.items() if k.startswith(("model.diffusion_model.", "first_stage_model."))}


def test_missing_folders_and_components_raise_clear_errors_without_network(sd, tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="Stable Diffusion folder not found.*never from the hub"):
        StableDiffusion.from_pretrained(tmp_path / "missing", CLASSES)
    with pytest.raises(FileNotFoundError, match="DiT folder not found"):
        DiT.from_pretrained("facebook/DiT-XL-2-256")
    with pytest.raises(FileNotFoundError, match="'unet' component config"):
        StableDiffusion.from_pretrained(tmp_path, CLASSES)
    with pytest.raises(FileNotFoundError, match="'transformer' component config"):
        DiT.from_pretrained(tmp_path)
    sd.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "tokenizer" / name).unlink()
    with pytest.raises(FileNotFoundError, match="CLIP tokenizer incomplete.*lacks vocab.json and merges.txt"):
        StableDiffusion.from_pretrained(tmp_path, CLASSES)
    (tmp_path / "tokenizer" / "vocab.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="CLIP tokenizer incomplete.*lacks merges.txt \\("):
        StableDiffusion.from_pretrained(tmp_path, CLASSES)


def test_missing_single_file_inputs_raise_clear_errors_without_network(sd, tmp_path, no_network):
    checkpoint, config = write_original_sd(sd, tmp_path)
    clip = save_clip(sd, tmp_path / "clip")
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="original SD config"):
        StableDiffusion.from_single_file(checkpoint, missing / "v1-inference.yaml", clip, CLASSES)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        StableDiffusion.from_single_file(missing / "sd-v1-4.ckpt", config, clip, CLASSES)
    with pytest.raises(FileNotFoundError, match="CLIP text encoder folder not found"):
        StableDiffusion.from_single_file(checkpoint, config, "openai/clip-vit-large-patch14", CLASSES)
    (clip / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="CLIP text encoder config"):
        StableDiffusion.from_single_file(checkpoint, config, clip, CLASSES)
