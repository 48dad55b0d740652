"""Any sample key maps to a unique, bounded, portable file name; the record keeps the true key."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ldce.results.store import file_stem

PORTABLE_STEM = re.compile(r"[a-z0-9_][a-z0-9_.~-]*")


def test_plain_keys_are_their_own_names_and_others_are_slugged_and_hashed():
    assert (
        file_stem("fmnist_test_00012") == "fmnist_test_00012"
        and file_stem("n01440764_10026.jpeg") == "n01440764_10026.jpeg"
    )
    cjk = "鍵" * 30
    for key in (cjk, "a/b", "../up", ".hidden", "with space", "Case", "case.", "CON", "con", "x" * 300):
        stem = file_stem(key)
        assert stem != key and "~" in stem and len(stem) <= 65 and PORTABLE_STEM.fullmatch(stem), (key, stem)
    assert file_stem("Case") != file_stem("case") and file_stem("a/b") != file_stem("a_b")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=120), min_size=2, max_size=40, unique=True))
def test_distinct_keys_get_distinct_bounded_portable_names_even_ignoring_case(keys):
    stems = [file_stem(key) for key in keys]
    assert len({stem.lower() for stem in stems}) == len(keys)
    assert all(len(stem) <= 100 and PORTABLE_STEM.fullmatch(stem) and not stem.endswith(".") for stem in stems)
