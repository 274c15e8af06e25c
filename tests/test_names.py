"""The naming rules (slyfs.vfs.names): escaping is reversible, unescaping never fails, and every
name a user or another tool writes means itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from slyfs.vfs.names import dedup_suffix, escape_name, nested_name, unescape_name, unique


@given(st.text())
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
