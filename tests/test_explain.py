"""``ldce explain``: image files, folders and lists explained without shards, labels optional, with the
records, files, summary and resume of ``ldce predict``."""

from __future__ import annotations

from cli_helpers import counts_of, ldce_here, ldce_in_process, png, records, summary, tiny_config

from ldce.datamodules.keys import sample_key

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
COAT = FASHION.index("Coat")


def _config(tmp_path):
    return tiny_config(tmp_path, "unused.tar", class_names=FASHION)


def _pngs(folder, count, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"photo {i}.png").write_bytes(png(i, size=size))
    return folder


def _explain(*args):
    return ldce_here("explain", *args, "--wandb.mode", "disabled")


def test_a_folder_without_labels_is_explained_toward_a_named_target_and_resumes(tmp_path):
    images, out, config = _pngs(tmp_path / "photos", 3, size=48), tmp_path / "out", str(_config(tmp_path))
    _explain(str(images), "--config", config, "--target", "Coat", "--output_dir", str(out))
    done = records(out)
    assert sorted(r["key"] for r in done) == sorted(sample_key(f"photo {i}.png") for i in range(3))
    for record in done:
        assert record["status"] == "done" and record["target"] == COAT and record["target_name"] == "Coat"
        assert record["source_predicted"] is True and record["source"] == record["source_prediction"]
        assert all((out / path).is_file() for path in record["files"].values())
        assert len(record["confidence_steps"]) == 5, "p(target) at each of the 5 guided steps"
    assert (out / "grid.png").is_file() and (out / "config.yaml").is_file()
    assert counts_of(out)["done"] == 3
    _explain(str(images), "--config", config, "--target", "Coat", "--output_dir", str(out))
    assert counts_of(out)["skipped"] == 3 and counts_of(out)["done"] == 0


def test_one_image_is_explained_toward_its_second_most_likely_class_by_default(tmp_path):
    image, out = _pngs(tmp_path / "one", 1) / "photo 0.png", tmp_path / "out"
    _explain(str(image), "--config", str(_config(tmp_path)), "--output_dir", str(out))
    (record,) = records(out)
    assert record["key"] == sample_key("photo 0.png") and record["status"] == "done"
    assert record["target"] != record["source_prediction"] and record["source_predicted"] is True


def test_a_csv_list_gives_labels_and_targets_by_name_or_index(tmp_path):
    images = _pngs(tmp_path / "photos", 2)
    (tmp_path / "list.csv").write_text(
        f"path,label,target\n{images.name}/photo 0.png,Ankle boot,Coat\n{images.name}/photo 1.png,1,2\n"
    )
    out = tmp_path / "out"
    _explain(str(tmp_path / "list.csv"), "--config", str(_config(tmp_path)), "--output_dir", str(out))
    facts = {r["key"]: (r["source"], r["target"], r["source_predicted"]) for r in records(out)}
    keys = [sample_key(f"photos/photo {i}.png") for i in range(2)]
    assert facts == {keys[0]: (9, COAT, False), keys[1]: (1, 2, False)}
    assert summary(out)["counts"]["done"] == 2


def test_explain_names_a_class_that_is_not_in_the_config_in_one_line(tmp_path, capsys):
    image = _pngs(tmp_path / "one", 1) / "photo 0.png"
    status, stderr = ldce_in_process(
        capsys, "explain", str(image), "--config", str(_config(tmp_path)), "--target", "Cot"
    )
    message = "--target 'Cot' is not a class index or one of the 10 class names; did you mean Coat?"
    assert status == 2 and stderr.strip().splitlines() == [f"ldce explain: error: {message}"]


def test_a_pairs_file_naming_a_source_class_twice_is_refused_naming_it(tmp_path, capsys):
    image = _pngs(tmp_path / "one", 1) / "photo 0.png"
    (tmp_path / "pairs.yaml").write_text("ankle_boot: 7\n9: Sandal\n")
    pairs = str(tmp_path / "pairs.yaml")
    status, stderr = ldce_in_process(
        capsys, "explain", str(image), "--config", str(_config(tmp_path)), "--targets", pairs
    )
    assert status == 2 and "source class 9 (9) is given twice" in stderr


def test_the_same_file_with_two_targets_is_two_inputs_and_with_the_same_one_input(tmp_path):
    images = _pngs(tmp_path / "photos", 1)
    (tmp_path / "list.csv").write_text("path,target\nphotos/photo 0.png,Coat\nphotos/photo 0.png,Shirt\n")
    out = tmp_path / "out"
    _explain(
        str(tmp_path / "list.csv"),
        str(images),
        str(images / "photo 0.png"),
        "--config",
        str(_config(tmp_path)),
        "--output_dir",
        str(out),
    )
    targets = [r["target"] for r in records(out)]
    for listed in (COAT, FASHION.index("Shirt")):
        targets.remove(listed)  # raises if a listed target is missing
    assert len(targets) == 1, "the file named twice without a target is one input"
    assert len(records(out)) == 3, "the folder and the file name the same unlabelled input once"
