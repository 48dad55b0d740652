"""The paper's diffusion checkpoints in their original formats: safe reading, conversion, failures.

Stand-ins are written by ``paper_files`` with real key names and nesting and random weights; the
Lightning checkpoints carry the bookkeeping objects that ``torch.load(weights_only=True)`` rejects.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import UNet2DConditionModel, VQModel
from paper_files import save_lightning_checkpoint, write_steex, write_tiny_cin, write_tiny_minisd
from safetensors.torch import save_file

from ldce.backbones import compvis, ldm_config
from ldce.backbones.class_conditional import ClassConditionalLDM
from ldce.backbones.paper import CIN256_V2_CONFIG, MINISD_CONFIG, cin256_v2, mini_sd
from ldce.backbones.sd_original import V1_INFERENCE_CONFIG
from ldce.backbones.stable_diffusion import StableDiffusion
from ldce.checkpoints import CheckpointError, Placeholder, check_fits, load_torch_file, read_tensors

SIDE_EFFECT = Path(os.environ.get("TMPDIR", "/tmp")) / "ldce_test_pickle_side_effect"


def touch_side_effect(path: str) -> None:
    """What a malicious pickle would call: creates a file."""
    Path(path).write_text("code ran")


class Malicious:
    """Pickles as a call of :func:`touch_side_effect` (a global no weights-only load allows)."""

    def __reduce__(self):
        return touch_side_effect, (str(SIDE_EFFECT),)


@pytest.fixture(scope="module")
def cin(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_cin(tmp_path_factory.mktemp("cin"), num_classes=1000)


@pytest.fixture(scope="module")
def minisd(tmp_path_factory) -> tuple[Path, Path, Path]:
    return write_tiny_minisd(tmp_path_factory.mktemp("minisd"))


def test_lightning_bookkeeping_is_read_as_inert_placeholders_and_tensors_load(cin):
    """The Lightning ``.ckpt`` loads weights-only; the callback class key becomes ``Placeholder``."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(cin[0], weights_only=True)
    content = load_torch_file(cin[0], "an LDM checkpoint")
    assert list(content["callbacks"]) == [Placeholder]
    assert isinstance(content["callbacks"][Placeholder]["best_model_score"], Placeholder)
    assert content["state_dict"]["cond_stage_model.embedding.weight"].shape == (1001, 32)


def test_no_code_in_a_checkpoint_runs(tmp_path):
    """A pickled call of an arbitrary function is not executed; it becomes a placeholder."""
    SIDE_EFFECT.unlink(missing_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Malicious()}, tmp_path / "bad.ckpt")
    content = load_torch_file(tmp_path / "bad.ckpt", "a checkpoint")
    assert isinstance(content["payload"], Placeholder) and not SIDE_EFFECT.exists()


def test_the_public_loaders_read_lightning_checkpoints_as_the_configs_do(cin, minisd):
    """``ClassConditionalLDM.from_compvis`` and ``StableDiffusion.from_single_file`` (the README's
    Python API) read the released ``.ckpt`` files with Lightning's bookkeeping, like the configs' loaders."""
    direct = ClassConditionalLDM.from_compvis(cin[0], cin[1])
    configured = cin256_v2(str(cin[0]), config_path=str(cin[1]))
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    cond, _ = direct.conditioning(torch.tensor([339, 340]))
    with torch.no_grad():
        assert torch.equal(direct.eps(z, t, cond), configured.eps(z, t, cond))
    checkpoint, config, clip = minisd
    model = StableDiffusion.from_single_file(checkpoint, config, clip, ["old", "young"])
    assert model.prompts(torch.tensor([1])) == ["a photo of a young."]


def test_cin256_v2_converts_the_lightning_ckpt_like_its_plain_state_dict(cin, tmp_path):
    """Same noise predictions and decodes as the converter on the bare tensors; cache reused."""
    state = load_torch_file(cin[0], "x")["state_dict"]
    save_file(state, tmp_path / "plain.safetensors")
    reference = compvis.convert_compvis_state_dict(state, ldm_config.read_ldm_config(cin[1]), "plain")
    model = cin256_v2(str(cin[0]), cache_dir=str(tmp_path / "cache"), config_path=str(cin[1]))
    cached = cin256_v2(str(cin[0]), cache_dir=str(tmp_path / "cache"), config_path=str(cin[1]))
    assert (tmp_path / "cache" / "diffusers" / "ldce_backbone.json").is_file()
    assert torch.equal(model.class_embedding.weight, reference.class_table)
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    cond, _ = model.conditioning(torch.tensor([339, 340]))
    with torch.no_grad():
        assert torch.equal(model.eps(z, t, cond), cached.eps(z, t, cond))
        assert torch.equal(model.decode(z), cached.decode(z))
    assert model.null_class == 1000 and model.scale_factor == 1.0


def test_the_packaged_cin256_v2_yaml_fits_the_real_checkpoint_layout(golden_dir):
    """Every key and shape of the released cin256-v2 state dict (golden manifest) converts into
    the diffusers modules built from the packaged yaml, with nothing left over."""
    manifest = json.loads((golden_dir / "cin256v2_manifest.json").read_text())
    state = {k: torch.empty(1).as_strided(shape, [0] * len(shape)) for k, shape in manifest["state_dict"].items()}
    spec = ldm_config.read_ldm_config(CIN256_V2_CONFIG)
    converted = compvis.convert_compvis_state_dict(state, spec, "manifest")
    for model_class, config, part in (
        (UNet2DConditionModel, spec.unet_config, converted.unet_state),
        (VQModel, spec.first_stage_config, converted.first_stage_state),
    ):
        with torch.device("meta"):
            check_fits(model_class(**config), part, "manifest", model_class.__name__)
    assert converted.class_table.shape == (1001, 512) and converted.image_size == 256


def test_the_packaged_minisd_yaml_is_v1_inference_at_256_px():
    """miniSD's yaml differs from SD 1.x's only in the latent size: 32 × 8 = 256 px."""
    mini, v1 = (yaml.safe_load(p.read_text()) for p in (MINISD_CONFIG, V1_INFERENCE_CONFIG))
    assert mini["model"]["params"].pop("image_size") == 32 and v1["model"]["params"].pop("image_size") == 64
    assert mini == v1


def test_mini_sd_loads_the_lightning_ckpt_with_a_local_clip_folder(minisd, tmp_path):
    checkpoint, config, clip = minisd
    names = tmp_path / "names.txt"
    names.write_text("old\nyoung\n")
    model = mini_sd(str(checkpoint), str(clip), str(names), "a photo of a {} person", config_path=str(config))
    assert model.prompts(torch.tensor([1, 0])) == ["a photo of a young person", "a photo of a old person"]
    assert model.image_size == 32


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a checkpoint"])
def test_unusable_diffusion_checkpoints_fail_naming_the_file(cin, minisd, tmp_path, damage):
    """A missing, truncated or non-torch file fails at load time, naming the file."""
    bad = tmp_path / "model.ckpt"
    if damage == "truncated":
        bad.write_bytes(cin[0].read_bytes()[: cin[0].stat().st_size // 2])
    elif damage == "not a checkpoint":
        bad.write_text("<html>404</html>")
    expected = FileNotFoundError if damage == "missing" else CheckpointError
    with pytest.raises(expected, match=str(bad)):
        cin256_v2(str(bad), config_path=str(cin[1]))
    with pytest.raises(expected, match=str(bad)):
        mini_sd(str(bad), str(minisd[2]), ["a", "b"], config_path=str(minisd[1]))


def test_checkpoints_of_another_architecture_fail_naming_the_file(cin, minisd, tmp_path):
    """An SD checkpoint given as the class-conditional LDM (and vice versa), or STEEX's classifier
    file as a diffusion model, is refused before any computation, naming the file."""
    with pytest.raises(CheckpointError, match=str(minisd[0])):
        cin256_v2(str(minisd[0]), config_path=str(cin[1]))
    with pytest.raises(CheckpointError, match=str(cin[0])):
        mini_sd(str(cin[0]), str(minisd[2]), ["a", "b"], config_path=str(minisd[1]))
    steex = write_steex(tmp_path / "checkpoint.tar")
    with pytest.raises(CheckpointError, match=str(steex)):
        cin256_v2(str(steex), config_path=str(cin[1]))


def test_a_lightning_ckpt_whose_state_dict_holds_non_tensors_is_refused(tmp_path):
    path = save_lightning_checkpoint({"w": torch.zeros(1), "odd": "text"}, tmp_path / "odd.ckpt")  # type: ignore[dict-item]
    with pytest.raises(CheckpointError, match="not tensors"):
        read_tensors(path, "an LDM checkpoint")
