"""Shortcuts in identity scanning find exactly what the full scans find."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.bench_rewrite import directory as bench_directory
from gateway.config import load_directory
from gateway.identity import patterns
from gateway.identity.patterns import (_PHONE_LIKE, IdentityPatterns, _phone_like, fold_text,
                                       patterns_for, prepare)

ROOT = Path(__file__).resolve().parent.parent

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


# Pieces that make names, addresses, their edges and their look-alikes.
NAME_PIECES = st.sampled_from([
    "Jane", "jane", "JANE", "Doe", "doe", "Janie", "J.", "J. Doe", "Doe, Jane", "jane.doe",
    "jdoe", "@corp.example", "jane.doe@corp.example", "José", "Jose", "Álvarez", "alvarez",
    "Pepe", "Mark", "mark", "Young", "Müller", "Mueller", "please", "does", "Lea", "Léa",
    " ", "  ", "\t", "\n", "\r\n", ".", ",", "@", "+", "-", "_", "'", "’", "—", "\u00a0",
    "<b>", ">", "(", "é", "\u0301", "ß", "Ｊａｎｅ", "Жанна", "x", "1", "555 010 7788",
    "Alias3", "Person"])


@pytest.fixture(scope="module")
def scanners() -> list[IdentityPatterns]:
    return [patterns_for(load_directory(ROOT / "agents.toml")), patterns_for(bench_directory(50))]


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(NAME_PIECES, max_size=20).map("".join))
def test_anchored_scan_finds_what_the_full_scan_finds(scanners: list[IdentityPatterns],
                                                      text: str) -> None:
    for scanner in scanners:
        for padded in (text, text + " and so on" * 30):  # a few characters beyond ASCII
            folded = fold_text(prepare(padded))
            anchored = scanner._anchored_candidates(folded)
            if anchored is None:
                continue  # mostly beyond ASCII: the full scan is what runs
            assert _accepted(scanner, padded, anchored) == _accepted(
                scanner, padded, list(scanner._all_candidates(folded)))


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(st.lists(NAME_PIECES | st.sampled_from(["doe  jane", "j  doe", "jose alvarez", "a", " x "]),
                max_size=20).map("".join))
def test_compiled_key_scan_finds_what_the_automaton_finds(text: str) -> None:
    import ahocorasick_rs

    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    from gateway.identity.patterns import _ASCII_EDGE_BYTES
    folded = fold_text(prepare(text)).encode("ascii", "replace").decode("ascii")
    for directory in (load_directory(ROOT / "agents.toml"), bench_directory(50)):
        keys = [key.encode("ascii") for key in patterns_for(directory)._ascii_key_texts]
        automaton = ahocorasick_rs.BytesAhoCorasick(keys)
        expected = automaton.find_matches_as_indexes(
            b" " + folded.encode("ascii").translate(_ASCII_EDGE_BYTES) + b" ", overlapping=True)
        assert sorted(wire.EdgeKeys(keys, _ASCII_EDGE_BYTES).find(folded)) == sorted(expected)


def _accepted(scanner: IdentityPatterns, text: str, candidates: list) -> list:
    original = scanner._anchored_candidates
    scanner._anchored_candidates = lambda folded: candidates  # type: ignore[method-assign]
    try:
        return scanner._hits(prepare(text))
    finally:
        scanner._anchored_candidates = original  # type: ignore[method-assign]


def test_anchored_scan_skips_keys_inside_words(scanners: list[IdentityPatterns]) -> None:
    scanner = scanners[1]
    text = "please let us know if the parcel does not arrive, it undoes nothing"
    assert [] == scanner._anchored_candidates(fold_text(text))
    assert len(list(scanner._all_candidates(fold_text(text)))) >= 2  # lea, doe
    assert scanner._hits("Best regards, Léa") and scanner._hits("write to lea")


def test_mostly_non_ascii_text_takes_the_full_scan(scanners: list[IdentityPatterns]) -> None:
    text = "Жанна " * 20 + "Jane Doe"
    assert scanners[0]._anchored_candidates(fold_text(text)) is None
    assert [hit.kind for hit in scanners[0].hits(text)] == ["name"]


MARKUP = st.lists(st.sampled_from(["<b>", "</B>", "<bdi>", "<bdo x>", "<big>", "<br>", "<body>",
                                   "<i>", "<img src=x>", "<IMG>", "<ins>", "<span class='a'>",
                                   "<s>", "<sub>", "<section>", "<strike>", "<a href>", "<abbr>",
                                   "<aside>", "<q>", "<qq>", "<time>", "<td>", "<", ">", "Jane",
                                   " ", "<!-- c -->", "&amp;", "<wbr/>", "<ı>", "<İmg>"]),
                  max_size=20).map("".join)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(MARKUP)
def test_factored_inline_tag_regex_matches_the_plain_alternation(markup: str) -> None:
    import re

    from gateway.identity.markup import INLINE_TAG, INLINE_TAG_NAMES
    plain = re.compile(r"</?(?:" + "|".join(sorted(INLINE_TAG_NAMES)) + r")\b[^<>]*>",
                       re.IGNORECASE)
    assert INLINE_TAG.sub("", markup) == plain.sub("", markup)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(MARKUP | st.lists(st.sampled_from(["<", ">", "/", "b", "B", "_", "1", "a", " ", "s", "x"]),
                         max_size=16).map("".join))
def test_tags_as_read_compiled_matches_the_regexes(markup: str) -> None:
    from gateway.identity.markup import tags_as_read, tags_as_read_in_python
    assert tags_as_read(markup) == tags_as_read_in_python(markup)


LINES = st.lists(st.sampled_from(["> quoted", ">", "On Monday Jane wrote:", "On Monday",
                                  "Le lundi a écrit", "El lunes escribió", "Am Montag schrieb",
                                  "-- ", "--", "-- x",
                                  "---- Original Message", "From: Jane", "From:x", " > not",
                                  "text", "", "--\r", "-- \r", "Le ", "Am"]),
                 max_size=12)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(LINES, st.sampled_from(["\n", "\r\n"]), st.integers(min_value=0, max_value=200))
def test_line_start_searches_find_what_re_finds(lines: list[str], newline: str,
                                                cut: int) -> None:
    from gateway.identity import rewrite
    text = newline.join(lines)
    end = min(cut, len(text))
    for pattern, lines in ((rewrite.QUOTE_START, rewrite._QUOTE_LINE),
                           (rewrite._SIGNATURE_DELIMITER, rewrite._DELIMITER_LINE)):
        for limit in (len(text), end):
            expected = pattern.search(text, 0, limit)
            found = rewrite._first_line_match(pattern, lines, text, limit)
            assert (found and found.span()) == (expected and expected.span())


SIGN_OFF_LINES = st.lists(st.sampled_from(["Best regards,", "  kind regards", "Thanks!",
                                           "thank you very much for everything you did", "x",
                                           "Cheers Jane", "all the best", "Saludos,", "", " ",
                                           "Grüße", "regardless", "Merci\r", "with thanks"]),
                          max_size=14)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(SIGN_OFF_LINES, st.sampled_from(["\n", "\r\n"]), st.integers(min_value=0, max_value=300),
       st.sampled_from([1, 2, 32]))
def test_last_sign_off_is_the_last_re_finds(lines: list[str], newline: str, cut: int,
                                            tail_lines: int) -> None:
    from gateway.identity import rewrite
    text = newline.join(lines) + newline
    original = rewrite._SIGN_OFF_TAIL_LINES
    rewrite._SIGN_OFF_TAIL_LINES = tail_lines
    try:
        for limit in (len(text), min(cut, len(text))):
            expected = list(rewrite._SIGN_OFF.finditer(text, 0, limit))
            found = rewrite._last_sign_off(text, limit)
            assert (found and found.span()) == (expected[-1].span() if expected else None)
    finally:
        rewrite._SIGN_OFF_TAIL_LINES = original


FOLD_TEXT = st.lists(st.sampled_from(["Jane", "JOSÉ", "é", "Á", "ß", "ẞ", "İ", "K", "Σ", "ΑΣ", "σ",
                                      "ς", "Ж", "ǅ", "Ⰰ", "ﬁ", "Ｊ", "a", " ", "A", "\u0301",
                                      "Ω", "Å"]), max_size=12).map("".join)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(FOLD_TEXT)
def test_fold_text_is_the_letter_by_letter_fold(text: str) -> None:
    from gateway.identity.patterns import _FOLD, _NON_ASCII
    lowered = text.lower()
    if len(lowered) != len(text):
        expected = text.translate(_FOLD)
    else:
        expected = str(_NON_ASCII.sub(lambda run: run.group().translate(_FOLD), lowered))
    assert fold_text(text) == expected


def _reading(text: str) -> str:
    """What prepare promises, done the long way."""
    import unicodedata

    text = patterns._INVISIBLE.sub("", text)
    if not unicodedata.is_normalized("NFC", text) and patterns._COMBINING.search(text):
        return unicodedata.normalize("NFC", text)
    return text


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.text(st.sampled_from("aeJ é\u00e9\u00ad\u0301\u00b4\u00a8\u00ffß\u2019Ж\u200b\ufeffx"),
               max_size=30))
def test_prepare_is_the_reading_it_promises(text: str) -> None:
    assert prepare(text) == _reading(text)


def test_latin_1_text_needs_no_composing() -> None:
    # Why prepare skips the NFC check for Latin-1 text: no character there has a mark to
    # compose with or changes under NFC.
    import unicodedata

    assert all(unicodedata.is_normalized("NFC", chr(code)) and
               unicodedata.combining(chr(code)) == 0 for code in range(256))


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(["a", "1", " ", "9", "é", "٣", "0", "\u0661", "\xb9", "abcdefgh",
                                 "Ж", "🙂"]), max_size=30).map("".join),
       st.sampled_from([0, 1, 3, 64]))
def test_compiled_digit_positions_match_their_definition(text: str, most: int) -> None:
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    from gateway.identity.patterns import digit_positions_in_python
    assert wire.digit_positions(text, most) == digit_positions_in_python(text, most)
