"""Target policies choose each input's target class; −1 where they have none."""

from __future__ import annotations

import re

import pytest
import torch

from ldce.classifiers.names import class_name, class_of, read_class_names
from ldce.targets import BinaryFlip, ClassPairs, FixedTarget, FromSample, SecondMostLikely, TargetMap

KEYS = ["a", "b", "c"]
LABELS = torch.tensor([339, 340, 7])
GIVEN = torch.tensor([1, -1, 2])
INDICES = torch.tensor([0, 1, 2])
LOGITS = torch.tensor([[0.1, 3.0, 2.0], [5.0, 1.0, 4.0], [0.0, 0.2, 0.1]])


def _call(policy, logits=LOGITS):
    return policy(KEYS, LABELS, GIVEN, INDICES, logits).tolist()


def test_from_sample_uses_the_stored_target():
    assert _call(FromSample()) == [1, -1, 2]


def test_from_sample_with_a_fallback_fills_only_the_samples_without_a_target():
    assert _call(FromSample(fallback=SecondMostLikely())) == [1, 2, 2]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (BinaryFlip(), "needs a binary classifier; this one has 3 classes"),
        (FixedTarget(3), "target 3 is not a class of the classifier (0 to 2)"),
        (ClassPairs({0: 5}), "class pairs name classes [5] outside the classifier's 0 to 2"),
        (FromSample(fallback=BinaryFlip()), "needs a binary classifier"),
    ],
    ids=["binary flip", "fixed", "pairs", "fallback"],
)
def test_a_policy_that_cannot_serve_the_classifier_says_why_before_any_work(policy, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        policy.check(3)
    FromSample().check(3)


def test_the_reason_for_a_missing_target_names_what_to_give():
    assert "--target" in FromSample().missing(4)
    assert "source class 4" in ClassPairs({0: 1}).missing(4)


def test_fixed_target_for_every_input():
    assert _call(FixedTarget(5)) == [5, 5, 5]


def test_class_pairs_map_each_source_to_its_partner_and_others_to_none():
    assert _call(ClassPairs({339: 340, 340: 339})) == [340, 339, -1]


def test_binary_flip_is_one_minus_label():
    assert BinaryFlip()(KEYS[:2], torch.tensor([0, 1]), GIVEN[:2], INDICES[:2], LOGITS[:2]).tolist() == [1, 0]


def test_second_most_likely_class_of_the_classifier():
    assert _call(SecondMostLikely()) == [2, 2, 2]
    assert SecondMostLikely()(KEYS, LABELS, GIVEN, INDICES, torch.tensor([2.0, -1.0, 0.5])).tolist() == [0, 1, 0]


def test_mapping_file_by_index_in_the_original_yaml_format(tmp_path):
    path = tmp_path / "image_idx_to_tgt.yaml"
    path.write_text("0: 11\n2: 13\n")
    assert _call(TargetMap(str(path))) == [11, -1, 13]


def test_mapping_file_keys_take_precedence_over_indices(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text('{"b": 21, "1": 99, "0": 20}')
    assert _call(TargetMap(str(path))) == [20, 21, -1]


def test_missing_or_malformed_mapping_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        TargetMap(str(tmp_path / "nothere.yaml"))
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml"):
        TargetMap(str(bad))


def test_class_names_from_lists_text_files_and_index_maps(tmp_path):
    assert read_class_names(["cat", "dog"]) == ["cat", "dog"] and read_class_names(None) is None
    text = tmp_path / "names.txt"
    text.write_text("tench\n goldfish \n\n")
    assert read_class_names(str(text)) == read_class_names(text) == ["tench", "goldfish"]
    text.write_text("tench\n\ngoldfish\n")
    with pytest.raises(ValueError, match="line 2 is blank"):
        read_class_names(str(text))
    mapping = tmp_path / "names.yaml"
    mapping.write_text("1: goldfish\n0: tench\n2: owl\n")
    assert read_class_names(str(mapping)) == ["tench", "goldfish", "owl"]
    mapping.write_text("0: tench\n10: shark\n")
    with pytest.raises(ValueError, match="without gaps"):
        read_class_names(str(mapping))
    assert class_name(["a", "b"], 1) == "b" and class_name(["a"], 3) is None and class_name(None, 0) is None


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.parametrize(
    ("typed", "hint"),
    [
        ("tshirt", "T-shirt/top"),
        ("t shirt", "T-shirt/top"),
        ("Cot", "Coat"),
        ("ankle", "Ankle boot"),
        ("Snekaer", "Sneaker"),
        ("bagg", "Bag"),
    ],
)
def test_an_unknown_class_name_suggests_the_name_it_begins_else_the_closest_spelling(typed, hint):
    with pytest.raises(ValueError, match=re.escape(f"did you mean {hint}?")):
        class_of(typed, FASHION, "--target")


def test_a_name_close_to_none_is_answered_with_every_class_name_not_a_guess():
    with pytest.raises(ValueError) as raised:
        class_of("s", FASHION, "--target")
    assert str(raised.value).endswith(f"one of the 10 class names: {', '.join(FASHION)}")
