"""Normalisation: evasions fold to plain words, ordinary text stays readable, excerpts map back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

from gateway.rules import segment
from gateway.rules.normalise import QUANTITY_UNITS, _ascii_steps, _fast, fold_ascii, normalise

ROOT = Path(__file__).resolve().parent.parent


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
    ("zorr@", "zorra"),
    ("sooo hottt", "so hot"),
    ("nu\u200bdes", "nudes"),
    ("ｎｕｄｅｓ", "nudes"),
    ("you.are.so.hot", "you are so hot"),
    ("\u202esedun dnes\u202c", "send nudes"),  # a right-to-left override shows it mirrored
    ("b**bs", "boobs"),
    ("f***ing b*tch", "fucking bitch"),
    ("the fat \U0001f404 at the desk", "the fat cow at the desk"),
    ("the red \U0001f697 is yours", "the red car is yours"),
    ("te voy a r*mp*r la m*dr*", "te voy a romper la madre"),
    ("\U0001f162\U0001f154\U0001f167\U0001f168", "sexy"),   # negative circled letters
    ("\U0001f1f8\U0001f1ea\U0001f1fd\U0001f1fe", "sexy"),   # regional indicators
])
def test_evasions_fold_to_the_word(written: str, seen: str) -> None:
    assert normalise(written).text == seen


@pytest.mark.parametrize("written, seen", [
    ("s e n d n u d e s", "send nudes"),
    ("i w i l l k i l l y o u", "i will kill you"),
    ("y o u a r e s o h o t t t", "you are so hot"),
    ("d a m e t u n u m e r o", "dame tu numero"),
    ("i c h w e i s s w o d u w o h n s t", "ich weiss wo du wohnst"),
    ("j e v a i s t e t u e r", "je vais te tuer"),
    ("s.e.n.d.n.u.d.e.s", "send nudes"),
    # A full stop between letters spaced by spaces ends a word.
    ("s a w y o u r l i g h t o n. y o u w e r e u p", "saw your light on you were up"),
    ("go on a d a t e w me", "go on a date w me"),     # text-speak letters are words too
])
def test_letters_spaced_across_words_are_split_into_them(written: str, seen: str) -> None:
    assert normalise(written).text == seen
    assert normalise(f"ok {written}!").offsets  # the excerpt path splits them the same way


@pytest.mark.parametrize("written, seen", [
    ("t h e r a p i s t", "therapist"),    # one known word stays one word
    ("S U P P O R T", "support"),
    ("j z v j z v", "jzvjzv"),             # not made of known words: joined, as before
    ("u s a", "usa"),                      # too short to be several words
])
def test_runs_that_are_not_several_words_stay_joined(written: str, seen: str) -> None:
    assert normalise(written).text == seen


@pytest.mark.parametrize("text", ["it's a quiet room", "i'm a regular", "she's a nurse",
                                  "don't u think"])
def test_the_letter_after_an_apostrophe_ends_its_word(text: str) -> None:
    assert normalise(text).text == text


@pytest.mark.parametrize("text", ["pr*ce", "*bold*", "footnote*", "gr**t"])
def test_masked_words_that_fit_no_masked_word_stay_as_written(text: str) -> None:
    assert normalise(text).text == text


def test_shipped_word_list_is_what_the_committed_data_gives(tmp_path: Path) -> None:
    """gateway/rules/words.txt must be rebuilt whenever the training replies change."""
    built = tmp_path / "words.txt"
    segment.write_word_list([ROOT / "tests/corpus/inbound", ROOT / "rules/training"], built)
    assert built.read_text() == segment.WORDS_FILE.read_text()


@pytest.mark.parametrize("text", ["1 2 3 go", "port 8080", "invoice #5417 for 45", "ref a1b2"])
def test_numbers_and_codes_keep_their_digits(text: str) -> None:
    assert any(char.isdigit() for char in normalise(text).text)


@pytest.mark.parametrize("text", ["vers 7h45", "um 17h30", "at 6pm", "at 1am", "the 3rd",
                                  "2nd floor", "20kg box", "4g signal", "7hrs late"])
def test_a_number_and_its_unit_is_not_leet(text: str) -> None:
    """Times and quantities keep their digits: "7h45" is not the word "thas"."""
    assert normalise(text).text == text.lower()


def test_whitespace_of_any_kind_is_one_space() -> None:
    assert normalise("a \t\n  b\r\nc").text == "a b c"


@pytest.mark.parametrize("written", ["s.e.n.d n.u.d.e.s", "S. E. X", "ᴡʜᴏʀᴇ", "b 1 t c h"])
def test_excerpt_is_the_original_text(written: str) -> None:
    normalised = normalise(f"well {written} then")
    start = len("well ")
    end = len(normalised.text) - len(" then")
    assert normalised.excerpt(start, end, context=0) == f"[[{written}]]"


# Text rich in what the ASCII steps look at: letters beside leet characters, single letters
# between separators, every kind of ASCII whitespace, marks between letters, repeats.
_ASCII_PIECES = st.lists(st.sampled_from(
    list("abcxyzA") + list("01234579") + list("@$!|+") + list(".-_*~") + list(",'()#/") +
    [" ", "  ", "\n", "\r\n", "\r", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "aaa", "s e x",
     "s.e.x", "s. e. x", "b1tch", "you.are", "hi_there", "x_y z", "sooo", "s e n d n u d e s",
     "i l o v e y o u", "y o u a r e h o t", "s.e.n.d.n.u.d.e.s", "zorr@", "a@", "@b",
     "7h45", "17h", "7hrs", "7h4a", "6pm", "3rd", "20kg", "5ex", "4ss", "1d10t", "h",
     "it's a", "'m a", "n i g h t. y o u", "a. b c d"]),
    max_size=40)


@pytest.mark.skipif(fold_ascii is None, reason="gateway.rules._fold was not compiled "
                    "(no C compiler at install): normalise runs the regular expressions")
@settings(max_examples=3000, deadline=None)
@given(_ASCII_PIECES)
def test_compiled_ascii_steps_are_the_regular_expressions(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert fold_ascii(text) == _ascii_steps(text, _fast, [])[0]
    # The excerpt path runs every step as a regular expression and checks it gets the same.
    normalised = normalise(text)
    assert len(normalised.offsets) == len(normalised.text)


@pytest.mark.skipif(fold_ascii is None, reason="gateway.rules._fold was not compiled")
@pytest.mark.parametrize("text", ["", " ", "\n", " \t\r\n ", "x", "ab", "a b", "a_b", "1",
                                  "a b c!", "\r\n\r\nhi\r\n", "s . e . x", "a. b. c.", "a-b-",
                                  "a_ " * 100 + "ab", "a " * 100, "x.y " * 70])
def test_compiled_ascii_steps_on_edges(text: str) -> None:
    assert fold_ascii(text) == _ascii_steps(text, _fast, [])[0]


@pytest.mark.skipif(fold_ascii is None, reason="gateway.rules._fold was not compiled")
@pytest.mark.parametrize("unit", QUANTITY_UNITS)
def test_compiled_step_knows_every_quantity_unit(unit: str) -> None:
    """_fold.c keeps its own copy of QUANTITY_UNITS: both must read each unit alike."""
    text = f"b1tch 7{unit} 7{unit}x"
    assert fold_ascii(text) == _ascii_steps(text, _fast, [])[0]
    assert f" 7{unit} " in fold_ascii(text)


def test_compiled_ascii_steps_refuse_other_text() -> None:
    if fold_ascii is None:
        pytest.skip("gateway.rules._fold was not compiled")
    with pytest.raises(ValueError):
        fold_ascii("café")
