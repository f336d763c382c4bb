"""Shortcuts in identity scanning find exactly what the full scans find."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity import patterns
from gateway.identity.patterns import _PHONE_LIKE, _phone_like

PHONE_TEXT = st.lists(st.sampled_from(["0", "1", "5", "9", " ", "\t", "(", ")", ".", "-", "/",
                                       "\u00a0", "+", "a", "x", "\n", "٣", "555 010 ",
                                       "7788"]), max_size=60).map("".join)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(PHONE_TEXT)
def test_phone_like_matches_are_the_full_regexs(text: str) -> None:
    for padded in (text, text + " " * 300, "x" * 300 + text):  # short and long texts
        expected = [match.span() for match in _PHONE_LIKE.finditer(padded)]
        assert [match.span() for match in _phone_like(padded)] == expected


def test_phone_like_with_many_digits_uses_the_full_regex(monkeypatch) -> None:
    text = " ".join(["12"] * 40) + " call +1 555 010 7788" + " words" * 50
    assert [m.group() for m in _phone_like(text)] == [m.group() for m in
                                                       _PHONE_LIKE.finditer(text)]
    monkeypatch.setattr(patterns, "_FEW_DIGITS", 10_000)
    assert [m.group() for m in _phone_like(text)] == [m.group() for m in
                                                       _PHONE_LIKE.finditer(text)]


def test_text_without_two_digits_has_no_phone() -> None:
    assert _phone_like("no digits at all" * 20) == []
    assert _phone_like("just 1 digit" + " words" * 50) == []
