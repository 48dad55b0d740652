"""Readers of the paper's data sets in their original layouts (tiny fakes), and their shards."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from paper_data import write_celebahq, write_devkit, write_flowers, write_imagenet_folder, write_pets
from paper_files import write_mat

from ldce.datamodules.celebahq import celebahq_items
from ldce.datamodules.datasets import main as datasets_main
from ldce.datamodules.imagenet import block_order, imagenet_items
from ldce.datamodules.matfile import MatFileError, read_mat, read_vector
from ldce.datamodules.oxford import flowers102_items, pets_items


def shard_meta(path) -> list[dict]:
    with tarfile.open(path) as tar:
        return [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]


@pytest.mark.parametrize("compress", [True, False])
def test_mat_reader_reads_numbers_strings_cells_and_structs_in_column_major_order(tmp_path, compress):
    matrix = np.arange(6.0).reshape(2, 3)
    synsets = [
        {"ILSVRC2012_ID": 7, "WNID": "n02119789", "children": np.zeros((1, 0))},
        {"ILSVRC2012_ID": 1, "WNID": "n02100735", "children": np.array([[3.0, 4.0]])},
    ]
    path = write_mat(
        tmp_path / "x.mat",
        {"labels": matrix, "tstid": np.array([[5, 1, 3]]), "synsets": synsets, "cells": ["text", 2.0]},
        compress,
    )
    variables = read_mat(path)
    assert np.array_equal(variables["labels"], matrix) and read_vector(path, "tstid").tolist() == [5, 1, 3]
    assert [(s["ILSVRC2012_ID"].item(), s["WNID"], s["children"].tolist()) for s in variables["synsets"]] == [
        (7, "n02119789", [[]]),
        (1, "n02100735", [[3.0, 4.0]]),
    ]
    assert variables["cells"][0] == "text" and variables["cells"][1].item() == 2.0
    (tmp_path / "bad.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(MatFileError, match="bad.mat"):
        read_mat(tmp_path / "bad.mat")


def test_flowers_split_follows_setid_order_with_zero_based_labels(tmp_path):
    write_flowers(tmp_path)  # torchvision's root/flowers-102 layout is found
    items = flowers102_items(tmp_path, [f"flower {i}" for i in range(102)], "test")
    assert [(i.relpath, i.label, i.class_name) for i in items] == [
        ("jpg/image_00006.jpg", 101, "flower 101"),
        ("jpg/image_00004.jpg", 0, "flower 0"),
        ("jpg/image_00005.jpg", 1, "flower 1"),
    ]


def test_pets_test_split_in_annotation_order_with_breed_names(tmp_path):
    write_pets(tmp_path)
    items = pets_items(tmp_path, "test")
    assert [(i.label, i.class_name) for i in items] == [
        (0, "abyssinian"),
        (15, "great pyrenees"),
        (36, "yorkshire terrier"),
    ]


@pytest.mark.parametrize("hq_rows", [False, True], ids=["list_attr_celeba", "CelebAMask-HQ-attribute-anno"])
def test_celebahq_test_partition_comes_from_the_source_celeba_image(tmp_path, hq_rows):
    """Test partition = HQ images whose CelebA source is in partition 2; labels 0/1 of attribute 31."""
    write_celebahq(tmp_path, hq_rows)
    items = celebahq_items(tmp_path, "Smiling", tmp_path / "attributes.txt", tmp_path / "list_eval_partition.txt")
    assert [(i.relpath, i.label, i.class_name) for i in items] == [
        ("CelebA-HQ-img/1.jpg", 1, "smiling"),
        ("CelebA-HQ-img/2.jpg", 0, "non-smiling"),
        ("CelebA-HQ-img/4.jpg", 0, "non-smiling"),
        ("CelebA-HQ-img/5.jpg", 1, "smiling"),
    ]
    young = celebahq_items(tmp_path, 39, tmp_path / "attributes.txt", tmp_path / "list_eval_partition.txt")
    assert [(i.label, i.class_name) for i in young] == [(0, "old"), (1, "young"), (1, "young"), (0, "old")]


def test_block_order_takes_the_bth_image_of_every_class_per_block():
    assert block_order([0, 0, 0, 1, 1, 1]) == [0, 3, 1, 4, 2, 5]
    with pytest.raises(ValueError, match="same number"):
        block_order([0, 0, 1])


def test_imagenet_folder_in_block_order_keeps_folder_order_indices(tmp_path):
    """Shard order: one image per class per block; ``index`` = torchvision ImageFolder position."""
    wnids = write_imagenet_folder(tmp_path / "val")
    items = imagenet_items(tmp_path / "val", class_names=[f"c{i}" for i in range(1000)])
    assert [(i.label, i.index) for i in items] == [(0, 0), (1, 2), (2, 4), (0, 1), (1, 3), (2, 5)]
    assert items[1].relpath == f"{wnids[1]}/ILSVRC2012_val_00000011.JPEG" and items[1].class_name == "c1"
    pairs = imagenet_items(tmp_path / "val", classes=[2, 1], order="folder")
    assert [(i.label, i.index) for i in pairs] == [(1, 2), (1, 3), (2, 4), (2, 5)]


def test_imagenet_flat_folder_with_the_devkit_or_a_labels_file_gives_the_folder_layouts_items(tmp_path):
    """Devkit (``meta.mat`` ids → wnids), wnid labels (``LOC_val_solution.csv``) and index labels
    (``val.txt``) all give the ImageFolder tree's labels, order and indices."""
    wnids = write_imagenet_folder(tmp_path / "tree")
    (tmp_path / "flat").mkdir()
    rows_wnid, rows_index, truth = ["ImageId,PredictionString"], [], {}
    for path in sorted((tmp_path / "tree").rglob("*.JPEG")):
        (tmp_path / "flat" / path.name).write_bytes(path.read_bytes())
        label = wnids.index(path.parent.name)
        rows_wnid.append(f"{path.stem},{path.parent.name} 1 2 3 4")
        rows_index.append(f"{path.name} {label}")
        truth[int(path.stem.rsplit("_", 1)[1])] = label
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows_wnid[:1] + rows_wnid[:0:-1]) + "\n")  # any row order
    (tmp_path / "val.txt").write_text("\n".join(rows_index) + "\n")
    write_devkit(tmp_path / "ILSVRC2012_devkit_t12", wnids, truth)
    expected = [(i.path.name, i.label, i.index) for i in imagenet_items(tmp_path / "tree")]
    for labels in ("LOC_val_solution.csv", "val.txt", "ILSVRC2012_devkit_t12"):
        assert [
            (i.path.name, i.label, i.index) for i in imagenet_items(tmp_path / "flat", tmp_path / labels)
        ] == expected


def test_datasets_command_writes_shards_with_labels_names_and_indices(tmp_path):
    write_imagenet_folder(tmp_path / "val")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"name {i}" for i in range(1000)) + "\n")
    datasets_main(
        [
            "imagenet",
            "--root",
            str(tmp_path / "val"),
            "--class_names",
            str(names),
            "--output",
            str(tmp_path / "shards" / "val-%06d.tar"),
            "--maxcount",
            "3",
        ]
    )
    meta = shard_meta(tmp_path / "shards" / "val-000000.tar") + shard_meta(tmp_path / "shards" / "val-000001.tar")
    assert [(m["label"], m["index"], m["class_name"]) for m in meta] == [
        (0, 0, "name 0"),
        (1, 2, "name 1"),
        (2, 4, "name 2"),
        (0, 1, "name 0"),
        (1, 3, "name 1"),
        (2, 5, "name 2"),
    ]
