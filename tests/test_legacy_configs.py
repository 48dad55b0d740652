"""Configs and flags of ldce 0.1 still run for one more release: read in their new places, with a warning."""

from __future__ import annotations

import subprocess
import sys

import yaml
from cli_helpers import environment, tiny_config

from ldce.compat.legacy import migrate_argv, migrate_config

OLD = {
    "model": {
        "class_path": "ldce.module.CounterfactualModule",
        "init_args": {
            "backbone": {
                "class_path": "ldce.backbones.pretrained.cin256_v2",
                "init_args": {"checkpoint_path": "m.ckpt"},
            },
            "classifier": {
                "class_path": "ldce.classifiers.torchvision_classifier",
                "init_args": {"name": "resnet50", "weights_path": "r.pth", "resize": None, "crop": 224},
            },
            "strength": 0.382,
            "deg_cone_projection": 45.0,
            "compile": True,
            "micro_batch_size": 5,
        },
    },
    "data": {"class_path": "ldce.datamodules.webdataset.WebDatasetDataModule", "init_args": {"urls": "x.tar"}},
}
NEW = {
    "model": {
        "backbone": {"class_path": "ldce.backbones.paper.cin256_v2", "init_args": {"checkpoint_path": "m.ckpt"}},
        "classifier": {
            "class_path": "ldce.classifiers.classifier",
            "init_args": {
                "torchvision": "resnet50",
                "checkpoint": "r.pth",
                "preprocessing": {"resize": None, "crop": 224},
            },
        },
        "method": {"strength": 0.382, "deg_cone_projection": 45.0},
        "speedups": {"compile": True},
        "micro_batch_size": 5,
    },
    "data": OLD["data"],
}


def test_an_old_config_is_rewritten_key_by_key_and_every_change_is_named():
    migrated, changes = migrate_config(OLD)
    assert migrated == NEW
    assert len(changes) == 10 and any("model.strength (now model.method.strength)" in c for c in changes)
    assert any("init_args.weights_path (now config.model.classifier.init_args.checkpoint)" in c for c in changes)
    assert migrate_config(NEW) == (NEW, [])


def test_old_flags_are_rewritten():
    argv, changes = migrate_argv(
        ["predict", "--model.init_args.strength=0.4", "--model.compile", "true", "--model.seed", "1"]
    )
    assert argv == ["predict", "--model.method.strength=0.4", "--model.speedups.compile", "true", "--model.seed", "1"]
    assert len(changes) == 2
    argv, changes = migrate_argv(
        [
            "--model.init_args.backbone.class_path",
            "ldce.backbones.pretrained.cin256_v2",
            "--model.classifier.init_args.crop=2",
        ]
    )
    expected = [
        "--model.backbone.class_path",
        "ldce.backbones.paper.cin256_v2",
        "--model.classifier.init_args.preprocessing.crop=2",
    ]
    assert argv == expected and len(changes) == 3


def test_a_partial_old_override_file_is_rewritten():
    assert migrate_config({"model": {"init_args": {"strength": 0.3}}})[0] == {"model": {"method": {"strength": 0.3}}}


def test_ldce_predict_reads_an_old_config_as_the_new_one_and_says_so(tmp_path):
    new = tiny_config(tmp_path, str(tmp_path / "x.tar"))
    config = yaml.safe_load(new.read_text())
    model = config["model"]
    old = tmp_path / "old.yaml"
    flat = {k: v for k, v in model.items() if k != "method"} | model["method"]
    old.write_text(
        yaml.safe_dump(config | {"model": {"class_path": "ldce.module.CounterfactualModule", "init_args": flat}})
    )

    def printed(path):
        command = [sys.executable, "-m", "ldce.cli", "predict", "--config", str(path), "--print_config"]
        return subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=120)

    then, now = printed(old), printed(new)
    assert then.returncode == now.returncode == 0, then.stderr[-2000:]
    assert then.stdout == now.stdout
    assert "ldce 0.1 keys" in then.stderr and "model.strength (now model.method.strength)" in then.stderr
    assert "ldce 0.1 keys" not in now.stderr


def test_the_originals_backprop_diffusion_is_read_as_backprop_noise_model():
    """The original's sampler option name, flat, under ``method`` or as a flag, lands on the renamed field."""
    for model in ({"backprop_diffusion": False}, {"method": {"backprop_diffusion": False, "strength": 0.3}}):
        migrated, changes = migrate_config({"model": model})
        assert migrated["model"]["method"]["backprop_noise_model"] is False
        assert "backprop_diffusion" not in migrated["model"]["method"] and len(changes) == 1
    flags, changes = migrate_argv(["--model.backprop_diffusion=false", "--model.method.backprop_diffusion", "0"])
    assert flags == ["--model.method.backprop_noise_model=false", "--model.method.backprop_noise_model", "0"]
    assert len(changes) == 2


def test_options_that_ldce_0_1_never_had_are_not_read_as_its_keys():
    """A later option given flat (``model.stacked_noise_vjp``) is not moved with an "ldce 0.1 key" warning:
    it stays an unknown key, which the parser answers with the closest known one."""
    config = {"model": {"stacked_noise_vjp": True, "halves": "joint", "cpp_wrapper": True}}
    assert migrate_config(config) == (config, [])
    assert migrate_argv(["--model.stacked_noise_vjp=true"]) == (["--model.stacked_noise_vjp=true"], [])
