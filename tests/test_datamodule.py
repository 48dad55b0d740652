"""Shard writer and ``WebDatasetDataModule``: exactly-once reading over ranks × workers, robust decoding."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import webdataset
from PIL import Image

from ldce.datamodules.batch import InputBatch
from ldce.datamodules.folders import collect_items
from ldce.datamodules.masks import IMAGE_EXTENSIONS
from ldce.datamodules.shards import main, write_shards
from ldce.datamodules.webdataset import RankSplitter, WebDatasetDataModule, expand_urls

SIZE = 16
CLASSES = ("ant", "bee", "cat")
# 13 images of every supported kind, spread unevenly over 3 class folders: (class, name, mode, format)
IMAGES = [
    ("ant", "a0", "RGB", "PNG"),
    ("ant", "a1", "RGB", "JPEG"),
    ("ant", "a2", "RGB", "WEBP"),
    ("ant", "a3", "L", "PNG"),
    ("ant", "a4", "RGBA", "PNG"),
    ("ant", "a5", "P", "PNG"),
    ("bee", "b0", "RGB", "JPEG"),
    ("bee", "b1", "L", "PNG"),
    ("bee", "b2", "RGBA", "PNG"),
    ("bee", "b3", "P", "PNG"),
    ("cat", "c0", "RGB", "WEBP"),
    ("cat", "c1", "RGB", "PNG"),
    ("cat", "c2", "L", "JPEG"),
]
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def _image_bytes(mode: str, fmt: str, size: tuple[int, int] = (24, 20), color: int = 90) -> bytes:
    """An encoded ``mode`` image of ``size`` (RGBA: fully transparent; P: 4 palette colours)."""
    if mode == "P":
        image = Image.new("RGB", size, (color, 30, 200)).quantize(colors=4)
    else:
        image = Image.new(mode, size, {"L": color, "RGB": (color, 10, 200), "RGBA": (color, 10, 200, 0)}[mode])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """An ImageFolder tree with the 13 ``IMAGES``."""
    root = tmp_path_factory.mktemp("tree")
    for cls, name, mode, fmt in IMAGES:
        (root / cls).mkdir(exist_ok=True)
        (root / cls / f"{name}{EXTENSIONS[fmt]}").write_bytes(_image_bytes(mode, fmt))
    return root


@pytest.fixture(scope="module")
def shards(tree, tmp_path_factory) -> str:
    """The tree written as 3 uneven shards (5, 5, 3 samples); returns the brace pattern."""
    out = tmp_path_factory.mktemp("shards")
    written = write_shards(collect_items(tree), str(out / "shard-%06d.tar"), maxcount=5)
    assert [Path(s).name for s in written] == [f"shard-{i:06d}.tar" for i in range(3)]
    return str(out / "shard-{000000..000002}.tar")


ALL_KEYS = sorted(f"{cls}_{name}" for cls, name, _, _ in IMAGES)


def _batches(urls, rank: int = 0, world_size: int = 1, **kwargs) -> list[dict]:
    """All batches one rank reads, with a fake trainer standing in for ``Trainer``."""
    module = WebDatasetDataModule(urls, image_size=SIZE, **kwargs)
    module.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
    return list(module.predict_dataloader())


def _keys(batches: list[dict]) -> list[str]:
    return [key for batch in batches for key in batch.keys]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_every_sample_is_read_exactly_once_over_ranks_and_workers(shards, world_size, num_workers):
    """Union over ranks × workers is every key, with no duplicate; a rank without a shard reads nothing."""
    per_rank = [_keys(_batches(shards, rank, world_size, num_workers=num_workers)) for rank in range(world_size)]
    assert sorted(key for keys in per_rank for key in keys) == ALL_KEYS
    if world_size == 4:
        assert per_rank[3] == []


def test_spawned_workers_read_every_sample_exactly_once(shards):
    """Workers started with spawn (pickled pipeline) split the shards like forked ones."""
    assert sorted(_keys(_batches(shards, num_workers=2, multiprocessing_context="spawn"))) == ALL_KEYS


def test_rank_splitter_gives_shard_i_to_rank_i_mod_world_size():
    """``RankSplitter`` slices the shard stream by rank; ranks beyond the shard count get nothing."""
    shard_stream = [{"url": f"s{i}"} for i in range(5)]
    assert [s["url"] for s in RankSplitter(1, 3)(iter(shard_stream))] == ["s1", "s4"]
    assert list(RankSplitter(6, 7)(iter(shard_stream))) == []
    with pytest.raises(ValueError, match="rank"):
        RankSplitter(2, 2)


@pytest.mark.parametrize("resize_mode", ["center_crop", "resize"])
def test_batches_follow_the_contract_and_images_are_rgb_in_unit_range(shards, resize_mode):
    """InputBatch: (B,3,H,W) float images in [0,1], labels = sorted class index, meta from the writer."""
    batches = _batches(shards, batch_size=4, resize_mode=resize_mode)
    assert [len(b.keys) for b in batches] == [4, 4, 4, 1]  # one worker: batches span shards
    for batch in batches:
        assert isinstance(batch, InputBatch)
        assert batch.images.shape == (len(batch.keys), 3, SIZE, SIZE) and batch.images.dtype == torch.float32
        assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0
        assert batch.failures == [] and batch.targets.tolist() == [-1] * len(batch.keys)
        for key, label, index, meta in zip(batch.keys, batch.labels, batch.indices, batch.meta, strict=True):
            assert CLASSES[label] == meta["class_name"] == key.split("_")[0] and index == meta["index"]
    by_key = {k: img for b in batches for k, img in zip(b.keys, b.images, strict=True)}
    assert torch.equal(by_key["ant_a3"][0], by_key["ant_a3"][2])  # grayscale → equal channels
    assert torch.all(by_key["bee_b2"] == 1.0)  # transparent RGBA → white background


def test_center_crop_keeps_the_middle_of_a_wide_image(tmp_path):
    """center_crop resizes the short side and crops the centre; resize squashes the whole image."""
    image = Image.new("RGB", (48, 16), (255, 0, 0))
    image.paste((0, 0, 255), (16, 0, 32, 16))  # blue middle third
    path = tmp_path / "wide.png"
    image.save(path)
    (tmp_path / "list.json").write_text(json.dumps([["wide.png", 0]]))
    urls = write_shards(collect_items(tmp_path / "list.json"), str(tmp_path / "s-%03d.tar"), 10)
    crop = _batches(urls)[0].images[0]
    squash = _batches(urls, resize_mode="resize")[0].images[0]
    assert torch.all(crop[2] > 0.9) and torch.all(crop[0] < 0.1)
    assert squash[0, :, 0].min() > 0.9 and squash[2, :, SIZE // 2].min() > 0.9


@pytest.fixture
def bad_shard(tmp_path) -> str:
    """One shard with good samples and broken ones (truncated JPEG, no label, no image, bad label)."""
    jpeg = _image_bytes("RGB", "JPEG", size=(64, 64))
    samples = [
        {"__key__": "good", "png": _image_bytes("RGB", "PNG"), "cls": b"2", "target.cls": b"1"},
        {"__key__": "truncated", "jpg": jpeg[: len(jpeg) // 2], "cls": b"0"},
        {"__key__": "nolabel", "png": _image_bytes("L", "PNG")},
        {"__key__": "noimage", "cls": b"1", "json": {"index": 9}},
        {"__key__": "badlabel", "png": _image_bytes("L", "PNG"), "cls": b"abc"},
        {"__key__": "metalabel", "png": _image_bytes("P", "PNG"), "json": {"label": 3, "target": 5, "index": 7}},
    ]
    path = tmp_path / "bad.tar"
    with webdataset.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)
    return str(path)


def test_broken_samples_become_failure_records_and_good_ones_still_arrive(bad_shard):
    """Truncated/missing image and an invalid label are reported by key, each reason one line (ldce's own
    explanations without an exception type); nothing raises. A missing label is not a failure: the
    sample arrives with label −1 (the runner takes the prediction)."""
    batches = _batches(bad_shard, batch_size=1, num_workers=2)
    failed = {f.key: f.reason for b in batches for f in b.failures}
    assert set(failed) == {"truncated", "noimage", "badlabel"}
    assert "truncated" in failed["truncated"].lower()
    assert failed["noimage"].startswith("missing image") and failed["badlabel"].startswith("invalid label")
    assert failed["truncated"].startswith("OSError: "), "a library's error keeps its type; ldce's own stand alone"
    columns = [[v for b in batches for v in getattr(b, field)] for field in ("keys", "labels", "targets", "indices")]
    good = {key: (int(label), int(target), int(index)) for key, label, target, index in zip(*columns, strict=True)}
    assert good == {"good": (2, 1, -1), "metalabel": (3, 5, 7), "nolabel": (-1, -1, -1)}
    only_failures = next(b for b in batches if b.failures)
    assert only_failures.images.shape == (0, 3, SIZE, SIZE) and only_failures.labels.shape == (0,)


def test_done_inputs_pass_over_samples_before_they_are_decoded_unless_their_labels_changed(bad_shard):
    """Done inputs are listed as skipped, never as results or failures: they are not decoded. An input
    done with other labels than it carries now (``metalabel`` was 3 → 4) is explained again."""
    module = WebDatasetDataModule(bad_shard, image_size=SIZE)
    module.skip({"truncated": None, "good": (2, 1), "metalabel": (3, 4)})
    batches = list(module.predict_dataloader())
    assert sorted(_keys(batches)) == ["metalabel", "nolabel"]
    assert {f.key for b in batches for f in b.failures} == {"noimage", "badlabel"}
    assert sorted(k for b in batches for k in b.skipped) == ["good", "truncated"]


def test_urls_expand_braces_lists_and_pipe_commands(shards):
    """Brace patterns, lists of them and ``pipe:`` commands name the same shards."""
    paths = expand_urls(shards)
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    assert expand_urls([shards.replace("{000000..000002}", "{000000..000001}"), paths[2]]) == paths
    assert sorted(_keys(_batches([f"pipe:cat {p}" for p in paths]))) == ALL_KEYS


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("urls", {"urls": []}),
        ("batch_size", {"batch_size": 0}),
        ("num_workers", {"num_workers": -1}),
        ("image_size", {"image_size": True}),
        ("resize_mode", {"resize_mode": "stretch"}),
        ("label_key", {"label_key": ""}),
        ("multiprocessing_context", {"multiprocessing_context": "thread"}),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_field(field, kwargs):
    """Bad constructor values raise ``ValueError`` whose message names the field."""
    with pytest.raises(ValueError, match=field):
        WebDatasetDataModule(**{"urls": "x.tar", **kwargs})


def _raw_samples(pattern: str) -> dict[str, dict]:
    """Undecoded samples of shards ``pattern``, by key."""
    dataset = webdataset.WebDataset(pattern, shardshuffle=False).decode()
    return {s["__key__"]: s for s in dataset}


def test_writer_imagefolder_labels_by_sorted_folder_and_meta(shards):
    """ImageFolder: cls = sorted class index, json meta {index, path, label, class_name}, bytes unchanged."""
    samples = _raw_samples(shards)
    assert sorted(samples) == ALL_KEYS
    for index, (cls, name, _, fmt) in enumerate(IMAGES):
        sample = samples[f"{cls}_{name}"]
        ext = EXTENSIONS[fmt].lstrip(".")
        path = f"{cls}/{name}.{ext}"
        assert sample["json"] == {"index": index, "path": path, "label": CLASSES.index(cls), "class_name": cls}
        assert sample["cls"] == CLASSES.index(cls) and "target.cls" not in sample and ext in IMAGE_EXTENSIONS


def test_writer_cli_reads_csv_with_or_without_header_and_json_lists(tree, tmp_path):
    """CSV (header or not) and JSON rows give cls, target.cls and meta; --class_names fills class_name."""
    (tmp_path / "names.txt").write_text("zero\none\ntwo\n")
    rows = [("ant/a0.png", 2, 1), ("bee/b1.png", 0, "")]
    (tmp_path / "plain.csv").write_text("".join(f"{p},{label},{t}\n" for p, label, t in rows))
    (tmp_path / "header.csv").write_text("path,label,target\n" + (tmp_path / "plain.csv").read_text())
    entries = [{"path": "ant/a0.png", "label": 2, "target": 1}, ["bee/b1.png", 0]]
    (tmp_path / "list.json").write_text(json.dumps(entries))
    for source in ("plain.csv", "header.csv", "list.json"):
        output = str(tmp_path / source.replace(".", "_") / "s-%02d.tar")
        argv = ["--input", str(tmp_path / source), "--output", output, "--maxcount", "1"]
        assert main([*argv, "--root", str(tree), "--class_names", str(tmp_path / "names.txt")]) == 0
        samples = _raw_samples(output.replace("%02d", "{00..01}"))
        meta = {"index": 0, "path": "ant/a0.png", "label": 2, "target": 1, "class_name": "two"}
        assert samples["ant_a0"]["json"] == meta
        assert samples["ant_a0"]["target.cls"] == 1 and samples["bee_b1"]["cls"] == 0
        assert "target.cls" not in samples["bee_b1"] and samples["bee_b1"]["json"]["class_name"] == "zero"


def test_writer_flat_folder_has_no_labels_and_unique_safe_keys(tmp_path):
    """A flat folder gives unlabelled samples (label −1); a.png/a.jpg/a.b.png get distinct keys."""
    for name in ("a.png", "a.jpg", "a.b.png", "notes.txt"):
        (tmp_path / name).write_bytes(_image_bytes("RGB", "PNG"))
    urls = write_shards(collect_items(tmp_path), str(tmp_path / "out" / "s-%03d.tar"), 100)
    samples = _raw_samples(urls[0])
    assert len(samples) == 3 and all("cls" not in s for s in samples.values())
    batches = _batches(urls)
    assert sorted(_keys(batches)) == sorted(samples) and not any(b.failures for b in batches)
    assert all((b.labels == -1).all() for b in batches)
