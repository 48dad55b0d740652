"""Image folders as people have them: ImageFolder trees matched to class names by name, and what
operating systems and archivers leave behind never taken for a class or an image."""

from __future__ import annotations

import json
import logging
import re
import tarfile

import pytest
from cli_helpers import ldce_here, ldce_in_process, png

from ldce.datamodules.folders import collect_items

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _tree(root, folders: dict[str, int]):
    for folder, count in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / folder / f"{i}.png").write_bytes(png(i))
    return root


def _labels(shard) -> dict[str, tuple[int, str]]:
    """key → (cls, json class_name) of every sample of a shard."""
    with tarfile.open(shard) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    keys = {name.split(".")[0] for name in members}
    return {k: (int(members[f"{k}.cls"]), json.loads(members[f"{k}.json"])["class_name"]) for k in keys}


def test_shards_match_imagefolder_names_to_the_given_class_names_by_name(tmp_path):
    tree = _tree(tmp_path / "tree", {"Ankle_boot": 1, "Coat": 1, "T-shirt_top": 1, "sneaker": 1})
    (tmp_path / "names.txt").write_text("\n".join(FASHION) + "\n")
    out = tmp_path / "shards" / "p-%06d.tar"
    ldce_here("shards", "--input", str(tree), "--output", str(out), "--class_names", str(tmp_path / "names.txt"))
    assert _labels(tmp_path / "shards" / "p-000000.tar") == {
        "Ankle_boot_0": (9, "Ankle boot"),
        "Coat_0": (4, "Coat"),
        "T-shirt_top_0": (0, "T-shirt/top"),
        "sneaker_0": (7, "Sneaker"),
    }


def test_a_class_folder_matching_no_given_name_is_a_one_line_error_naming_it(tmp_path, capsys):
    tree = _tree(tmp_path / "tree", {"Coat": 1, "Jacket": 1})
    (tmp_path / "names.txt").write_text("\n".join(FASHION) + "\n")
    out = tmp_path / "shards" / "p-%06d.tar"
    status, stderr = ldce_in_process(
        capsys, "shards", "--input", str(tree), "--output", str(out), "--class_names", str(tmp_path / "names.txt")
    )
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "['Jacket'] match none of the 10 class names" in stderr and not out.parent.exists()


def test_leftovers_of_operating_systems_and_archivers_are_neither_classes_nor_images(tmp_path, caplog):
    tree = _tree(tmp_path / "tree", {"Coat": 2, "Bag": 1, "Sandal": 0, "__MACOSX/Coat": 0, ".thumbnails": 1})
    for leftover in ("Coat/._0.png", ".DS_Store", "Coat/Thumbs.db", "Bag/desktop.ini", "__MACOSX/Coat/._1.png"):
        (tree / leftover).write_bytes(b"\0\5\0\7 not an image")
    (tree / "Bag" / "notes.txt").write_text("a note")
    with caplog.at_level(logging.WARNING):
        items = collect_items(tree, FASHION)
    assert sorted((i.relpath, i.label) for i in items) == [("Bag/0.png", 8), ("Coat/0.png", 4), ("Coat/1.png", 4)]
    assert "class folder 'Sandal' holds no images" in caplog.text
    assert "skipped 1 file (not images: {'.txt': 1})" in caplog.text


def test_without_class_names_sorted_folders_are_the_classes_and_empty_ones_keep_their_place(tmp_path):
    tree = _tree(tmp_path / "tree", {"b": 1, "a": 1, "c_empty": 0, "d": 1})
    assert {i.relpath: i.label for i in collect_items(tree)} == {"a/0.png": 0, "b/0.png": 1, "d/0.png": 3}


def test_a_flat_folder_with_archive_leftovers_gives_its_real_images_unlabelled(tmp_path):
    flat = _tree(tmp_path / "flat", {"__MACOSX": 0})
    for i in range(3):
        (flat / f"x{i}.png").write_bytes(png(i))
    (flat / "__MACOSX" / "._x0.png").write_bytes(b"\0\5\0\7")
    items = collect_items(flat)
    assert sorted(i.relpath for i in items) == ["x0.png", "x1.png", "x2.png"]
    assert all(i.label is None for i in items)


def test_images_beside_class_folders_are_taken_unlabelled_with_a_warning(tmp_path, caplog):
    tree = _tree(tmp_path / "tree", {"Coat": 1})
    (tree / "loose.png").write_bytes(png(9))
    with caplog.at_level(logging.WARNING):
        items = collect_items(tree, FASHION)
    assert {i.relpath: i.label for i in items} == {"loose.png": None, "Coat/0.png": 4}
    assert "1 image outside the class folders are taken without a label" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("boot.png,9,7\nmissing.png,2,4\n", "list.csv:2: no such file"),
        ("\ufeffboot.png,Ankle boot,Coat\n", None),
        ("a;b\n", "no rows (expected comma-separated path[,label[,target]])"),
        ("boot.png,12,7\n", "label 12 has no entry in class_names (10 names)"),
    ],
    ids=["missing file", "byte-order mark", "semicolons", "label out of range"],
)
def test_a_csv_list_is_read_row_by_row_or_refused_naming_the_row(tmp_path, text, message):
    (tmp_path / "boot.png").write_bytes(png(1))
    (tmp_path / "list.csv").write_text(text, encoding="utf-8")
    if message is None:
        (item,) = collect_items(tmp_path / "list.csv", FASHION)
        assert (item.relpath, item.label, item.target) == ("boot.png", 9, 4)
    else:
        with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
            collect_items(tmp_path / "list.csv", FASHION)


def test_numbered_class_folders_are_those_class_indices_not_sorted_positions(tmp_path):
    tree = _tree(tmp_path / "tree", {"2": 1, "10": 1, "9": 1})
    assert {i.relpath: i.label for i in collect_items(tree)} == {"2/0.png": 2, "9/0.png": 9, "10/0.png": 10}
    assert {i.relpath: i.class_name for i in collect_items(tree, FASHION[:11] + ["Extra"])}["9/0.png"] == "Ankle boot"


def test_a_results_folder_and_an_empty_folder_inside_the_inputs_are_not_classes_or_inputs(tmp_path):
    tree = _tree(tmp_path / "tree", {"Coat": 1, "outputs/counterfactual": 2, "drafts": 0})
    (tree / "outputs" / "manifest.json").write_text("{}")
    assert {i.relpath: i.label for i in collect_items(tree, FASHION)} == {"Coat/0.png": 4}
    flat = _tree(tmp_path / "flat", {"outputs/counterfactual": 2, "drafts": 0})
    (flat / "outputs" / "manifest.json").write_text("{}")
    (flat / "a.png").write_bytes(png(3))
    assert [(i.relpath, i.label) for i in collect_items(flat, FASHION)] == [("a.png", None)]


def test_subfolders_matching_no_class_name_suggest_a_glob_to_take_the_images_unlabelled(tmp_path):
    tree = _tree(tmp_path / "tree", {"holiday": 1})
    with pytest.raises(ValueError, match=re.escape(f"give a glob: '{tree}/**/*.*'")):
        collect_items(tree, FASHION)


def test_a_csv_header_picks_its_columns_by_name_in_any_order_ignoring_others(tmp_path):
    (tmp_path / "boot.png").write_bytes(png(1))
    (tmp_path / "list.csv").write_text("target,notes,file,label\nCoat,worn,boot.png,Ankle boot\n")
    (item,) = collect_items(tmp_path / "list.csv", FASHION)
    assert (item.relpath, item.label, item.target) == ("boot.png", 9, 4)
    (tmp_path / "bad.csv").write_text("label,target\n9,4\n")
    with pytest.raises(ValueError, match="bad.csv:1: the header names no path column"):
        collect_items(tmp_path / "bad.csv", FASHION)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["boot.png"], ("boot.png", None, None)),
        ([{"path": "boot.png", "label": "Ankle boot"}], ("boot.png", 9, None)),
        ([["boot.png", 9, "Coat"]], ("boot.png", 9, 4)),
        ([{"file": "boot.png"}], "list.json[0]: an entry needs a \"path\", got keys ['file']"),
    ],
    ids=["plain path", "object", "list", "object without path"],
)
def test_a_json_list_takes_paths_lists_and_objects_and_names_an_entry_without_a_path(tmp_path, entries, expected):
    (tmp_path / "boot.png").write_bytes(png(1))
    (tmp_path / "list.json").write_text(json.dumps(entries))
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=re.escape(expected)):
            collect_items(tmp_path / "list.json", FASHION)
    else:
        (item,) = collect_items(tmp_path / "list.json", FASHION)
        assert (item.relpath, item.label, item.target) == expected


def test_a_class_name_in_a_list_without_class_names_says_names_need_them(tmp_path):
    (tmp_path / "boot.png").write_bytes(png(1))
    (tmp_path / "list.csv").write_text("boot.png,Ankle boot\n")
    with pytest.raises(ValueError, match="list.csv:1: invalid label 'Ankle boot' .*labels given as names need"):
        collect_items(tmp_path / "list.csv")


def test_region_masks_beside_images_are_found_in_any_case_and_extension_and_are_no_inputs(tmp_path, caplog):
    for name in ("a.png", "b.PNG", "c.png"):
        (tmp_path / name).write_bytes(png(0))
    for name in ("a.Mask.JPG", "b.mask.png"):
        (tmp_path / name).write_bytes(png(1))
    with caplog.at_level(logging.WARNING):
        items = collect_items(tmp_path)
    assert {i.relpath: None if i.mask is None else i.mask.name for i in items} == {
        "a.png": "a.Mask.JPG",
        "b.PNG": "b.mask.png",
        "c.png": None,
    }
    assert "skipped" not in caplog.text, "a mask file is neither an input nor a stray file"
