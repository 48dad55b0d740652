"""The paper's experiments as shipped configs: they parse, carry the seed's hyperparameters, and each
runs a few-step ``ldce predict`` end to end on CPU with its checkpoints pointed at tiny stand-ins in
the *original* formats and its data written by the data-set readers from tiny fakes, with the
network disabled (HF / transformers offline and every socket connection refused and recorded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import records, summary
from paper_data import write_celebahq, write_flowers, write_imagenet_folder, write_pets
from paper_files import (
    write_dino,
    write_linear_head,
    write_open_clip_stub,
    write_simsiam,
    write_steex,
    write_tiny_cin,
    write_tiny_minisd,
    write_torchvision,
)

from ldce.classifiers.paper import load_linear_head
from ldce.cli import run_cli
from ldce.datamodules.datasets import main as datasets_main
from ldce.datamodules.nearest_targets import main as targets_main

TESTS = Path(__file__).resolve().parent
REPO, CONFIGS = TESTS.parent, TESTS.parent / "configs"
EXPERIMENTS = (
    "imagenet_ldm",
    "imagenet_sd",
    "imagenet_pairs_ldm",
    "imagenet_pairs_sd",
    "celebahq_smile",
    "celebahq_age",
    "flowers",
    "pets",
)
COMMON = {
    "ddim_steps": 500,
    "scale": 3.0,
    "ddim_eta": 0.0,
    "lp_custom": 1,
    "guidance": "projected",
    "cone_projection_type": "zero_binning",
}
SEED = {  # strength, λc, λd, θ, batch size: the seed's commands over the reference configs they name
    "imagenet_ldm": (0.382, 2.3, 0.3, 45.0, 5),
    "imagenet_sd": (0.382, 3.95, 1.2, 50.0, 4),
    "imagenet_pairs_ldm": (0.342, 2.0, 0.25, 40.0, 4),
    "imagenet_pairs_sd": (0.382, 3.95, 1.2, 50.0, 4),
    "celebahq_smile": (0.502, 4.0, 3.3, 55.0, 4),
    "celebahq_age": (0.502, 4.0, 3.3, 55.0, 4),
    "flowers": (0.5, 3.4, 1.2, 45.0, 4),
    "pets": (0.382, 4.2, 2.4, 45.0, 4),
}


@pytest.mark.parametrize("name", [*EXPERIMENTS, "flowers_linear_head"])
def test_every_config_parses(name, capsys, monkeypatch):
    """``ldce predict|fit --config configs/<name>.yaml --print_config`` succeeds (nothing is loaded)."""
    command = "fit" if name == "flowers_linear_head" else "predict"
    monkeypatch.setattr(sys, "argv", ["ldce"])
    with pytest.raises(SystemExit) as exited:
        run_cli([command, "--config", str(CONFIGS / f"{name}.yaml"), "--print_config"])
    assert exited.value.code in (0, None) and "class_path" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_configs_carry_the_seeds_hyperparameters(name):
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    model, data = config["model"], config["data"]["init_args"]
    method = model["method"]
    strength, classifier_lambda, dist_lambda, degrees, batch_size = SEED[name]
    assert {k: method[k] for k in COMMON} == COMMON
    assert (method["strength"], method["classifier_lambda"], method["dist_lambda"], method["deg_cone_projection"]) == (
        strength,
        classifier_lambda,
        dist_lambda,
        degrees,
    )
    assert data["batch_size"] == model["micro_batch_size"] == batch_size and data["image_size"] == 256


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Tiny stand-ins of every released file the experiments read."""
    folder = tmp_path_factory.mktemp("models")
    cin, cin_yaml = write_tiny_cin(folder / "cin256-v2")
    minisd, minisd_yaml, clip = write_tiny_minisd(folder / "miniSD")
    return {
        "cin": cin,
        "cin_yaml": cin_yaml,
        "minisd": minisd,
        "minisd_yaml": minisd_yaml,
        "clip": clip,
        "resnet": write_torchvision(folder / "resnet50-0676ba61.pth"),
        "steex": write_steex(folder / "checkpoint.tar"),
        "dino": write_dino(folder / "dino_deitsmall8_pretrain.pth"),
        "head": write_linear_head(folder / "head.pth"),
        "simsiam": write_simsiam(folder / "checkpoint_0099.pth.tar"),
        "openclip": write_open_clip_stub(folder / "openclip.bin"),
    }


def backbone_files(name: str, files: dict[str, Path], folder: Path) -> dict[str, str]:
    if name.endswith("_ldm"):
        return {
            "checkpoint_path": str(files["cin"]),
            "config_path": str(files["cin_yaml"]),
            "cache_dir": str(folder / "cache"),
        }
    return {
        "checkpoint_path": str(files["minisd"]),
        "config_path": str(files["minisd_yaml"]),
        "text_encoder_dir": str(files["clip"]),
    }


def classifier_files(name: str, files: dict[str, Path]) -> dict[str, object]:
    if name.startswith("imagenet"):
        return {"checkpoint": str(files["resnet"]), "preprocessing": {"resize": None, "crop": 24}}
    if name.startswith("celebahq"):
        return {"checkpoint_path": str(files["steex"])}
    if name == "flowers":  # ViT-S/8 needs its 224 px crop: the 32 px stand-in images are upsampled to it
        return {"backbone_path": str(files["dino"]), "head_path": str(files["head"]), "preprocessing": {"resize": 224}}
    return {"weights_path": str(files["openclip"]), "preprocessing": {"crop": 24}}


IMAGENET_NAMES = ["--class_names", str(CONFIGS / "classes" / "imagenet.txt")]
SHARDS = "shards/part-%06d.tar"


def imagenet_data(folder: Path, files: dict[str, Path]) -> None:
    """One validation image of classes 0, 1, 2 in block order; targets by folder-order index."""
    write_imagenet_folder(folder / "val", per_class=1)
    datasets_main(["imagenet", "--root", str(folder / "val"), *IMAGENET_NAMES, "--output", str(folder / SHARDS)])
    (folder / "targets.yaml").write_text(yaml.safe_dump({0: 390, 1: 394, 2: 1}))  # as image_idx_to_tgt.yaml


def pairs_data(folder: Path, files: dict[str, Path]) -> None:
    """One sorrel (339) and one zebra (340) image."""
    write_imagenet_folder(folder / "val", classes=(339, 340), per_class=1)
    datasets_main(
        [
            "imagenet",
            "--root",
            str(folder / "val"),
            "--classes",
            "339",
            "340",
            "--order",
            "folder",
            *IMAGENET_NAMES,
            "--output",
            str(folder / SHARDS),
        ]
    )


def celebahq_data(folder: Path, files: dict[str, Path], attribute: str) -> None:
    """The 4 test-partition images of the fake CelebA-HQ, labelled by ``attribute``."""
    write_celebahq(folder / "celebahq")
    datasets_main(
        [
            "celebahq",
            "--root",
            str(folder / "celebahq"),
            "--attribute",
            attribute,
            "--attributes_file",
            str(folder / "celebahq" / "attributes.txt"),
            "--partition_file",
            str(folder / "celebahq" / "list_eval_partition.txt"),
            "--output",
            str(folder / SHARDS),
        ]
    )


def flowers_data(folder: Path, files: dict[str, Path]) -> None:
    """One 224 px test image; its target from SimSiam features of the training images."""
    write_flowers(folder, test_ids=(6,), size=224)
    flowers = ["flowers102", "--root", str(folder), "--class_names", str(CONFIGS / "classes" / "flowers102.txt")]
    datasets_main([*flowers, "--output", str(folder / SHARDS)])
    datasets_main([*flowers, "--split", "train", "--output", str(folder / "train" / "part-%06d.tar")])
    targets_main(
        [
            "--shards",
            str(folder / SHARDS) % 0,
            "--reference_shards",
            str(folder / "train" / "part-000000.tar"),
            "--weights",
            str(files["simsiam"]),
            "--image_size",
            "32",
            "--output",
            str(folder / "targets.yaml"),
        ]
    )


def pets_data(folder: Path, files: dict[str, Path]) -> None:
    """Three test images; targets converted from a file in the original's ``*_closest_indices.json`` format."""
    write_pets(folder / "pets")
    datasets_main(["pets", "--root", str(folder / "pets"), "--output", str(folder / SHARDS)])
    (folder / "closest.json").write_text(json.dumps({"0": [5, 3], "1": [0], "2": [35, 1]}))
    targets_main(["--closest_indices", str(folder / "closest.json"), "--output", str(folder / "targets.yaml")])


DATA = {
    "imagenet_ldm": imagenet_data,
    "imagenet_sd": imagenet_data,
    "imagenet_pairs_ldm": pairs_data,
    "imagenet_pairs_sd": pairs_data,
    "celebahq_smile": lambda f, m: celebahq_data(f, m, "Smiling"),
    "celebahq_age": lambda f, m: celebahq_data(f, m, "Young"),
    "flowers": flowers_data,
    "pets": pets_data,
}


def prepare_data(name: str, files: dict[str, Path], folder: Path) -> tuple[str, str | None, dict[int, int] | None]:
    """Shards written by ``python -m ldce.datamodules.datasets`` from a fake of the data set, and the
    target file and its content where the experiment reads one."""
    DATA[name](folder, files)
    targets = folder / "targets.yaml"
    if not targets.is_file():
        return str(folder / SHARDS) % 0, None, None
    return str(folder / SHARDS) % 0, str(targets), yaml.safe_load(targets.read_text())


def derived_config(name: str, files: dict[str, Path], folder: Path) -> tuple[Path, dict[int, int] | None]:
    """The shipped config with its files replaced by the stand-ins, CPU, 2 denoising steps, small images,
    no COUT in the summary (51 classifier calls per image)."""
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    urls, targets_path, targets = prepare_data(name, files, folder)
    config.update(
        output_dir=str(folder / "out"),
        wandb={"mode": "disabled"},
        summary={"metrics": {"cout": False}},
        trainer={"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
    )
    model, data = config["model"], config["data"]["init_args"]
    model["method"].update(ddim_steps=4, strength=0.5)
    model.update(step_progress=False)
    model["backbone"]["init_args"].update(backbone_files(name, files, folder))
    model["classifier"]["init_args"].update(classifier_files(name, files))
    data.update(urls=urls, image_size=32)
    if targets_path:
        model["targets"]["init_args"]["path"] = targets_path
    if name == "flowers":  # a ViT-S/8 at 224 px: one image, one step
        model["method"].update(strength=0.25)
        model.update(micro_batch_size=1)
        data.update(batch_size=1)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, targets


def offline_environment(folder: Path, stubs: bool) -> dict[str, str]:
    paths = [TESTS / "offline", *([TESTS / "stubs"] if stubs else []), TESTS]
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LDCE_NETWORK_LOG": str(folder / "network.log"),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    }


def run_offline(args: list[str], folder: Path, stubs: bool = False) -> subprocess.CompletedProcess:
    """``ldce <args>`` in a subprocess from the repository root, without network."""
    result = subprocess.run(
        [sys.executable, "-m", "ldce.cli", *args],
        cwd=REPO,
        env=offline_environment(folder, stubs),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not (folder / "network.log").exists(), f"network access attempted: {(folder / 'network.log').read_text()}"
    return result


def expected_target(name: str, record: dict, targets: dict[int, int] | None) -> int:
    if name.startswith("celebahq"):
        return 1 - record["source"]
    if name.startswith("imagenet_pairs"):
        return {339: 340, 340: 339}[record["source"]]
    return targets[record["meta"]["index"]]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_end_to_end_offline_on_original_format_stand_ins(name, files, tmp_path):
    """Every sample is explained towards the target its policy gives, and nothing touches the network."""
    config, targets = derived_config(name, files, tmp_path)
    result = run_offline(["predict", "--config", str(config)], tmp_path, stubs=name == "pets")
    assert result.returncode == 0, result.stderr[-4000:]
    done = records(tmp_path / "out")
    assert done and all(r["status"] == "done" for r in done), done
    assert summary(tmp_path / "out")["counts"]["failed"] == 0
    for record in done:
        assert record["target"] == expected_target(name, record, targets) != record["source"]
        assert record["target_name"] and (tmp_path / "out" / record["files"]["counterfactual"]).is_file()


def test_a_truncated_checkpoint_stops_the_run_before_any_work_naming_the_file(files, tmp_path):
    config, _ = derived_config("imagenet_ldm", files, tmp_path)
    truncated = tmp_path / "model.ckpt"
    truncated.write_bytes(files["cin"].read_bytes()[:100_000])
    content = yaml.safe_load(config.read_text())
    content["model"]["backbone"]["init_args"]["checkpoint_path"] = str(truncated)
    config.write_text(yaml.safe_dump(content))
    result = run_offline(["predict", "--config", str(config)], tmp_path)
    assert result.returncode != 0 and str(truncated) in result.stderr and "truncated" in result.stderr
    assert not (tmp_path / "out" / "records.jsonl").exists() and not (tmp_path / "out" / "counterfactual").exists()


def test_the_flowers_linear_head_trains_with_ldce_fit_and_exports_dino_keys(files, tmp_path):
    """``ldce fit`` on the shipped config (one step) writes a head that the Flowers classifier reads."""
    write_flowers(tmp_path, size=64)
    config = yaml.safe_load((CONFIGS / "flowers_linear_head.yaml").read_text())
    head = tmp_path / "head.safetensors"
    config.update(output_dir=str(tmp_path / "out"))
    config["trainer"].update(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        callbacks=[{"class_path": "ldce.callbacks.export.ExportWeights", "init_args": {"path": str(head)}}],
    )
    config["model"]["init_args"]["backbone_path"] = str(files["dino"])
    config["data"]["init_args"].update(root=str(tmp_path), batch_size=2)
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(config))
    result = run_offline(["fit", "--config", str(tmp_path / "fit.yaml")], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert load_linear_head(str(head), 102).linear.weight.shape == (102, 384)


def test_the_network_guard_refuses_and_records_a_download(tmp_path):
    """The guard of the runs above is not vacuous: a download attempt fails and is recorded."""
    code = (
        "import urllib.request\ntry:\n    urllib.request.urlopen('https://huggingface.co', timeout=5)\n"
        "except OSError as error:\n    print(error)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=offline_environment(tmp_path, stubs=False),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "network access is disabled" in result.stdout
    assert "huggingface.co" in (tmp_path / "network.log").read_text()
