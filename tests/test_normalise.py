"""Normalisation: evasions fold to plain words, ordinary text stays readable, excerpts map back."""

from __future__ import annotations

import pytest

from gateway.rules.normalise import normalise


@pytest.mark.parametrize("written, seen", [
    ("s e x y", "sexy"),
    ("s.e.x.y", "sexy"),
    ("s-e-x-y", "sexy"),
    ("s. e. x", "sex"),
    ("s.e.n.d n.u.d.e.s", "send nudes"),
    ("ᴡʜᴏʀᴇ", "whore"),
    ("ѕеnd", "send"),
    ("b1tch", "bitch"),
    ("$exy", "sexy"),
    ("sooo hottt", "so hot"),
    ("nu\u200bdes", "nudes"),
    ("ｎｕｄｅｓ", "nudes"),
    ("you.are.so.hot", "you are so hot"),
])
def test_evasions_fold_to_the_word(written: str, seen: str) -> None:
    assert normalise(written).text == seen


@pytest.mark.parametrize("text", ["1 2 3 go", "port 8080", "invoice #5417 for 45", "ref a1b2"])
def test_numbers_and_codes_keep_their_digits(text: str) -> None:
    assert any(char.isdigit() for char in normalise(text).text)


def test_whitespace_of_any_kind_is_one_space() -> None:
    assert normalise("a \t\n  b\r\nc").text == "a b c"


@pytest.mark.parametrize("written", ["s.e.n.d n.u.d.e.s", "S. E. X", "ᴡʜᴏʀᴇ", "b 1 t c h"])
def test_excerpt_is_the_original_text(written: str) -> None:
    normalised = normalise(f"well {written} then")
    start = len("well ")
    end = len(normalised.text) - len(" then")
    assert normalised.excerpt(start, end, context=0) == f"[[{written}]]"
