"""``ldce shards`` / :func:`write_shards`: every image format the decoder reads is written and read back,
a shard appears under its name only once complete, stale shards of an earlier run are named, and a
pattern without exactly one integer field is refused before anything is written."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ldce.datamodules.folders import ShardItem, collect_items
from ldce.datamodules.shards import main, write_shards
from ldce.datamodules.webdataset import WebDatasetDataModule

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _image_bytes(colour: tuple[int, int, int], fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _folder(folder: Path, count: int) -> Path:
    """``count`` PNG files ``0.png`` … in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"{index}.png").write_bytes(_image_bytes(RED, "PNG"))
    return folder


def _decoded(urls: list[str]) -> tuple[dict[str, torch.Tensor], list]:
    """``key → image`` of every usable sample of the shards ``urls``, and the failures."""
    images, failures = {}, []
    for batch in WebDatasetDataModule(urls, batch_size=8, image_size=4).predict_dataloader():
        images.update(zip(batch.keys, batch.images, strict=True))
        failures += batch.failures
    return images, failures


def test_gif_and_tiff_files_are_written_and_read_back_decoded(tmp_path):
    """A folder holding an animated .gif (first frame red), a .tif and a .TIFF gives three samples that
    all decode (no failure) to their colours."""
    frames = [Image.new("RGB", (4, 4), colour) for colour in (RED, BLUE)]
    (tmp_path / "in").mkdir()
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "in" / "green.tif").write_bytes(_image_bytes(GREEN, "TIFF"))
    (tmp_path / "in" / "blue.TIFF").write_bytes(_image_bytes(BLUE, "TIFF", compression="tiff_lzw"))
    pattern = str(tmp_path / "out" / "s-%06d.tar")
    assert main(["--input", str(tmp_path / "in"), "--output", pattern]) == 0
    images, failures = _decoded([pattern % 0])
    assert not failures and sorted(images) == ["anim", "blue", "green"]
    for key, colour in (("anim", RED), ("green", GREEN), ("blue", BLUE)):
        expected = torch.tensor(colour, dtype=torch.float32).div(255).view(3, 1, 1).expand(3, 4, 4)
        torch.testing.assert_close(images[key], expected, atol=1 / 255, rtol=0)


def test_a_shard_that_fails_part_way_leaves_no_file_under_its_name(tmp_path):
    """maxcount 2, the 4th image unreadable (a folder named .png): shard 0 is complete, shard 1 exists
    neither under its name nor as a partial file, and the error reaches the caller."""
    items = [ShardItem(path, path.name) for path in sorted(_folder(tmp_path / "in", 3).iterdir())]
    (tmp_path / "in" / "3.png").mkdir()
    items.append(ShardItem(tmp_path / "in" / "3.png", "3.png"))
    pattern = str(tmp_path / "out" / "s-%06d.tar")
    with pytest.raises(IsADirectoryError):
        write_shards(items, pattern, maxcount=2)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["s-000000.tar"]
    images, failures = _decoded([pattern % 0])
    assert not failures and sorted(images) == ["0", "1"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe to stall the writer")
def test_a_killed_writer_leaves_no_truncated_shard_under_a_final_name(tmp_path):
    """The writer blocks on its 3rd image (a named pipe) while writing shard 1 and is killed (SIGKILL):
    shard 0 is complete and readable, no file is named like shard 1."""
    _folder(tmp_path / "in", 2)
    os.mkfifo(tmp_path / "in" / "2.png")
    pattern = str(tmp_path / "out" / "s-%06d.tar")
    script = (
        "import sys; from pathlib import Path; from ldce.datamodules.folders import ShardItem;"
        "from ldce.datamodules.shards import write_shards;"
        "paths = sorted(Path(sys.argv[1]).iterdir());"
        "write_shards([ShardItem(p, p.name) for p in paths], sys.argv[2], 2)"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "in"), pattern])
    partial = tmp_path / "out" / ".s-000001.tar.partial"
    deadline = time.monotonic() + 60
    while not partial.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.kill()
    writer.wait()
    assert partial.exists(), "the writer never reached shard 1"
    assert not Path(pattern % 1).exists()
    images, failures = _decoded([pattern % 0])
    assert not failures and sorted(images) == ["0", "1"]


def test_shards_of_an_earlier_longer_run_are_named_in_a_warning_and_kept(tmp_path, caplog):
    """5 shards, then 2 over them: s-000002 … s-000004 are named (and left); files the pattern does not
    name (other width, other text) are not."""
    pattern = str(tmp_path / "out" / "s-%06d.tar")
    write_shards(collect_items(str(_folder(tmp_path / "five", 5))), pattern, maxcount=1)
    (tmp_path / "out" / "s-7.tar").write_bytes(b"")
    (tmp_path / "out" / "s-notes.tar").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="ldce.datamodules.shards"):
        write_shards(collect_items(str(_folder(tmp_path / "two", 2))), pattern, maxcount=1)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 shards" in warnings[0]
    assert all(pattern % index in warnings[0] for index in (2, 3, 4))
    assert pattern % 1 not in warnings[0] and "s-7.tar" not in warnings[0] and "s-notes" not in warnings[0]
    assert all(Path(pattern % index).exists() for index in range(5))


def test_a_rerun_over_as_many_shards_warns_of_nothing(tmp_path, caplog):
    """Writing the same images twice names no stale shard."""
    pattern = str(tmp_path / "out" / "s-%d.tar")
    for _ in range(2):
        write_shards(collect_items(str(_folder(tmp_path / "in", 3))), pattern, maxcount=2)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", ["%s.tar", "x.tar", "%d-%d.tar", "%%d.tar", "%f.tar", "%(n)d.tar", "%*d.tar"])
def test_a_pattern_without_exactly_one_integer_field_is_refused_before_writing(tmp_path, name):
    """ValueError on one line naming the pattern and an example; no folder or file is made."""
    pattern = str(tmp_path / "out" / name)
    with pytest.raises(ValueError) as caught:
        write_shards(collect_items(str(_folder(tmp_path / "in", 1))), pattern, maxcount=1)
    message = str(caught.value)
    assert repr(pattern) in message and "%06d" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["s-%d.tar", "s-%06d.tar", "100%%-%03i.tar"])
def test_integer_fields_of_any_width_are_accepted_and_missing_folders_created(tmp_path, name):
    """The pattern's folders (two levels, none existing) are created; shard i is named ``pattern % i``."""
    pattern = str(tmp_path / "a" / "b" / name)
    written = write_shards(collect_items(str(_folder(tmp_path / "in", 3))), pattern, maxcount=2)
    assert written == [pattern % 0, pattern % 1] and all(Path(shard).is_file() for shard in written)
