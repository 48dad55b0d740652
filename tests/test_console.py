"""The ``ldce`` command explains itself: ``ldce --help`` lists every command, ``--version`` answers, and a
user's mistake is one line on stderr with exit status 2, never a traceback or a page of usage."""

from __future__ import annotations

import logging
import re

import pytest
from cli_helpers import good_sample, ldce, ldce_in_process, ldce_run, png, tiny_config, write_shard

import ldce as package
from ldce.commands.console import configure
from ldce.commands.front import COMMANDS, TOOLS


def test_help_lists_every_command_and_the_shipped_configs():
    result = ldce("--help")
    listed = {line.split()[0] for line in result.stdout.split("commands:")[1].split("\n\n")[0].splitlines() if line}
    assert listed == set(COMMANDS) and set(TOOLS) <= listed and "explain" in listed
    assert "quickstart" in result.stdout and "-q" in result.stdout and "--version" in result.stdout


def test_version_names_the_installed_version():
    assert ldce("--version").stdout.strip() == f"ldce {package.__version__}"


def test_predict_help_explains_each_hyperparameter():
    text = ldce("predict", "--help").stdout
    for option in ("--model.method.strength", "--model.method.classifier_lambda", "--writer.save_steps"):
        assert option in text
    assert "share of the DDIM grid to noise to" in text and "grid_rows" in text
    assert "any of" in text and "torch.nn.Linear" not in text, (
        "nn.Module's hundreds of subclasses are counted, not listed"
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console")
    write_shard(folder / "a.tar", [good_sample(0)])
    (folder / "photo.png").write_bytes(png(0))
    (folder / "list.yaml").write_text("- model\n- data\n")
    (folder / "typo.yaml").write_text("model:\n  method:\n    scael: 2.0\n")
    return folder, tiny_config(folder, str(folder / "a.tar"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "--model.method.strength", "3"], 'Parser key "model.method.strength"'),
        (["predict", "--model.method.strenght", "0.3"], "did you mean --model.method.strength?"),
        (
            ["predict", "--model.method.lp_custom", "dino_cosim"],
            "--model.method.lp_custom: 'dino_cosim' is not one of 1, 2, dino_cossim, dino_1, dino_2; "
            "did you mean dino_cossim?",
        ),
        (["predict", "--model.method.guidance", "proj"], "'proj' is not one of projected, unprojected, free"),
        (["predict", "--model.method.cone_projection_type", "DEFAULT"], "default; did you mean default?"),
        (["predict", "--model.method.enforce_same_norms", "maybe"], "'maybe' is not one of true, false"),
        (["predict", "--config", "{folder}/typo.yaml"], "'model.method.scael'; did you mean --model.method.scale?"),
        (
            ["predict", "--data.batch_sise", "4"],
            "--data.batch_sise: ldce.datamodules.webdataset.WebDatasetDataModule takes no option 'batch_sise'; "
            "did you mean batch_size?",
        ),
        (["predict", "--data.limit", "4"], "takes no option 'limit'; its options: urls, batch_size"),
        (["predict", "--data.init_args.urls", "{folder}/nowhere.tar"], "1 of 1 shards not found"),
        (["predict", "--data.init_args.urls", "{folder}/photo.png"], "is an image, not a WebDataset shard"),
        (["explain", "{folder}/nowhere.png"], "nowhere.png: no such file or folder"),
        (["predict", "--output_dir", "{folder}/photo.png"], "is a file, not a folder"),
        (["evaluate", "--results", "{folder}/nowhere"], "is not an ldce results folder"),
        (["shards", "--input", "{folder}", "--output", "{folder}/out/x.tar"], "needs exactly one integer field"),
        (["predict", "--model.class_names", "[a, b]"], "model.class_names has 2 names, but the classifier gives 10"),
        (["predict", "--model.targets", "ldce.targets.BinaryFlip"], "needs a binary classifier; this one has 10"),
        (["predict", "--output_dir", ""], "--output_dir is empty"),
        (["predict", "--config", "{folder}/list.yaml"], "a config is a mapping of sections"),
        (["predict", "--config", "quickstrat"], "neither a file nor a config that ships with ldce; did you mean"),
        (
            ["explain", "{folder}/photo.png", "--target", "4.0"],
            "'4.0' is neither a class index (a whole number from 0) nor a class name",
        ),
    ],
    ids=[
        "bad value",
        "unknown key",
        "unknown choice of ints and names",
        "unknown choice of names",
        "choice in another case",
        "not a boolean",
        "unknown key in a config file",
        "unknown option of the data class",
        "option of the data class close to none",
        "missing shard",
        "image as shard",
        "missing image",
        "file as folder",
        "no results",
        "bad pattern",
        "names and classes differ",
        "binary policy",
        "empty output folder",
        "list as config",
        "misspelt config name",
        "fractional target",
    ],
)
def test_a_user_error_is_one_line_and_exit_status_2(config, args, message, capsys):
    folder, path = config
    args = [arg.format(folder=folder) for arg in args]
    command = args[:1] + (["--config", str(path)] if args[0] in ("predict", "explain") else []) + args[1:]
    status, stderr = ldce_in_process(capsys, "-q", *command)
    assert status == 2, stderr
    assert stderr.strip().splitlines() == [stderr.strip()], stderr
    assert stderr.startswith(f"ldce {args[0]}: error: ") and message in stderr


def test_the_command_itself_reports_a_user_error_in_one_line():
    result = ldce_run("-q", "predict", "--config", "quickstrat")
    assert result.returncode == 2
    expected = "--config 'quickstrat' is neither a file nor a config that ships with ldce; did you mean quickstart?"
    assert result.stderr.strip() == f"ldce predict: error: {expected}"


def test_an_unknown_command_suggests_the_closest(capsys):
    status, stderr = ldce_in_process(capsys, "explian")
    assert status == 2 and "unknown command 'explian'; did you mean explain?" in stderr


def test_quiet_runs_say_nothing_when_all_goes_well(config):
    folder, path = config
    result = ldce("-q", "predict", "--config", str(path), "--output_dir", str(folder / "quiet"))
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


def test_a_default_run_shows_ldce_messages_but_not_the_frameworks_banners(config):
    folder, path = config
    result = ldce("predict", "--config", str(path), "--output_dir", str(folder / "default"))
    assert "ldce.callbacks.summary: summary:" in result.stderr
    assert not re.search(r"Tip:|GPU available|Seed set to", result.stderr), result.stderr


def test_a_run_in_which_every_input_failed_is_an_error(config, tmp_path):
    folder, _ = config
    write_shard(tmp_path / "bad.tar", [{"__key__": "cut", "png": png(0)[:40], "cls": b"1", "target.cls": b"2"}])
    result = ldce_run(
        "predict",
        "--config",
        str(tiny_config(tmp_path, str(tmp_path / "bad.tar"))),
        "--output_dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2 and "every input failed (1); the reasons are in" in result.stderr
    assert (tmp_path / "out" / "summary.json").is_file()
    results = next(line for line in result.stderr.splitlines() if "results in" in line)
    assert results.endswith("(records.jsonl, summary.json)"), "no grid.png was written, none is claimed"


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_torch_s_compile_time_cuda_notice_is_shown_only_with_verbose(level, shown):
    """``No CUDA runtime is found`` (torch.utils.cpp_extension, when inductor compiles on a CPU) is hidden
    at the default level and shown with ``-v``."""
    configure(level)
    assert logging.getLogger("torch.utils.cpp_extension").isEnabledFor(logging.WARNING) is shown
    configure("INFO")
