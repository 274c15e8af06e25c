"""The naming rules (slyfs.vfs.names): escaping is reversible, unescaping never fails, and every
name a user or another tool writes means itself."""

from __future__ import annotations

import os
import re

from hypothesis import given
from hypothesis import strategies as st

from slyfs.vfs.names import NAME_MAX, dedup_suffix, escape_name, nested_name, unescape_name, unique

FITTING = st.text(max_size=50)  # at most 4 bytes a character once escaped: never shortened


@given(FITTING)
def test_escape_is_a_valid_component_and_reversible(name: str) -> None:
    component = escape_name(name)
    assert component not in ("", ".", "..") and "/" not in component and "\0" not in component
    assert unescape_name(component) == name


@given(st.text())
def test_unescape_never_fails(component: str) -> None:
    unescape_name(component)


def test_names_the_escaping_does_not_produce_mean_themselves() -> None:
    for name in ("50%off", "100%", "%zz", "%", "%2", "a%2fb", "%41", "x%2E", "%2E%2E%2E"):
        if name == "%":
            assert unescape_name(name) == ""  # the empty name's escape
        else:
            assert unescape_name(name) == name
    assert unescape_name("50%25.png") == "50%.png"
    assert unescape_name("a%2Fb") == "a/b"
    assert unescape_name("%2E") == "." and unescape_name("%2E%2E") == ".."


def test_siblings_get_a_suffix_before_the_extension() -> None:
    assert dedup_suffix("a.jpg", 2) == "a~2.jpg"
    assert dedup_suffix("train", 3) == "train~3"
    assert dedup_suffix(".env", 2) == ".env~2"
    taken: set[str] = set()
    assert [unique(n, taken) for n in ("a.jpg", "a.jpg", "a~2.jpg", "a.jpg")] == ["a.jpg", "a~2.jpg", "a~2~2.jpg",
                                                                                  "a~3.jpg"]


def test_nested_datasets_join_with_two_underscores() -> None:
    assert nested_name(["train", "night"]) == "train__night"


# ---- any length, any bytes ------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=400)  # surrogates too: JSON can carry them


@given(ANY_TEXT, st.integers(0, 16))
def test_every_escape_is_a_component_linux_and_cp_accept(name: str, room: int) -> None:
    component = escape_name(name, room)
    raw = os.fsencode(component)  # the FUSE layer's encoding: never fails
    assert len(raw) <= NAME_MAX - room and raw not in (b"", b".", b"..") and b"/" not in raw and b"\0" not in raw


@given(FITTING)
def test_text_names_that_fit_come_back(name: str) -> None:
    component = escape_name(name)
    if len(os.fsencode(component)) < NAME_MAX:
        assert unescape_name(component) == name


def test_long_names_keep_their_start_and_extension_and_stay_distinct() -> None:
    a, b = escape_name("x" * 300 + "1.jpg"), escape_name("x" * 300 + "2.jpg")
    assert a != b and a.startswith("x" * 200) and a.endswith(".jpg") and len(a.encode()) == NAME_MAX
    assert len(escape_name("%" * 255).encode()) == NAME_MAX  # escaping triples it: shortened
    assert len(escape_name("é" * 200, room=5).encode()) <= NAME_MAX - 5
    assert not escape_name("a" * 250 + "%2F" * 10).endswith(("%", "%2"))  # never half an escape
    assert escape_name("a" * 255) == "a" * 255  # a name that fits is left alone


@given(st.binary(min_size=1, max_size=NAME_MAX))
def test_any_folder_name_is_a_text_platform_name(raw: bytes) -> None:
    """A folder a user makes in import/ (any bytes) names a project: text, with bytes that are not
    UTF-8 written %XX, so nothing is lost."""
    name = unescape_name(os.fsdecode(raw))
    name.encode("utf-8")  # the platform takes it: no surrogates left
    if b"%" not in raw:
        undecodable = re.sub(r"%([0-9A-F]{2})", lambda m: chr(0xDC00 + int(m.group(1), 16)), name)
        assert os.fsencode(undecodable) == raw  # every byte recoverable


def test_bytes_that_are_not_utf8_become_percent_escapes() -> None:
    assert unescape_name(os.fsdecode(b"caf\xe9")) == "caf%E9"
    assert unescape_name(os.fsdecode(b"\xff%2Fx")) == "%FF/x"
    assert escape_name(unescape_name(os.fsdecode(b"caf\xe9"))) == "caf%25E9"  # how the tree then shows it
    assert escape_name("\ud800") == "\ufffd"  # a lone surrogate (not text) cannot be a path component
    assert os.fsencode(escape_name("\udce9")) == b"\xe9"  # ... except those that stand for one byte


def test_suffixes_keep_a_component_within_the_limit() -> None:
    long = "a" * 251 + ".jpg"
    assert dedup_suffix(long, 12) == "a" * 248 + "~12.jpg"
    assert len(dedup_suffix("b" * 255, 2).encode()) == NAME_MAX
    assert dedup_suffix("c" * 300, 2) == "c" * 300 + "~2"  # a platform name, not a component: kept whole
    assert nested_name(["d" * 200, "e" * 200]).startswith("d" * 200 + "__") and len(nested_name(
        ["d" * 200, "e" * 200]).encode()) == NAME_MAX
