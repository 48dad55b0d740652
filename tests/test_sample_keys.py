"""Input keys from file names (``ldce explain``, ``ldce shards``): distinct files never share a key, and a
file's key does not depend on which other files are given — so a re-run with a file added never takes
the new file for one explained before."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldce.datamodules.folders import ShardItem
from ldce.datamodules.keys import sample_key, unique_keys

NAME = st.text(st.sampled_from("ab+ _.中ü-/"), min_size=1, max_size=6).map(lambda s: f"{s.strip('/') or 'x'}.png")


def _keys(relpaths: list[str]) -> dict[str, str]:
    return dict(zip(relpaths, unique_keys([ShardItem(Path(p), p) for p in relpaths]), strict=True))


def test_plain_names_are_their_keys_and_others_carry_a_hash_of_the_path():
    assert sample_key("coat.png") == "coat" and sample_key("imgs/coat.png") == "imgs_coat"
    assert sample_key("x b.png").startswith("x_b_") and sample_key("x+b.png").startswith("x_b_")
    assert sample_key("x b.png") != sample_key("x+b.png")


def test_files_sharing_a_stem_all_get_hashed_keys_not_only_the_later_ones():
    keys = _keys(["a.jpg", "a.png", "b.png"])
    assert keys["b.png"] == "b" and keys["a.jpg"] != keys["a.png"]
    assert keys["a.jpg"].startswith("a_") and keys["a.png"].startswith("a_")


@settings(max_examples=200, deadline=None)
@given(st.lists(NAME, min_size=1, max_size=8, unique=True), NAME)
def test_distinct_files_get_distinct_keys_and_an_added_file_never_takes_an_earlier_key(names, added):
    before = _keys(names)
    assert len(set(before.values())) == len(names)
    if added in names:
        return
    after = _keys([*names, added])
    assert len(set(after.values())) == len(names) + 1
    assert after[added] not in before.values(), "the added file must not inherit a key explained before"


def test_one_file_with_two_targets_is_two_keys_and_with_the_same_target_is_refused():
    items = [ShardItem(Path("a.png"), "a.png", target=1), ShardItem(Path("a.png"), "a.png", target=2)]
    assert len(set(unique_keys(items))) == 2


def test_a_path_given_twice_is_refused():
    with pytest.raises(ValueError, match="duplicate input 'a.png'"):
        _keys(["a.png", "a.png"])
