"""Text as the rules see it: what a person reads, with evasions undone.

NFKD with marks and zero-width characters dropped, lower case, homoglyphs folded to Latin
(Cyrillic "а" is "a", boxed letters plain), asterisk-masked words read as the one word they fit
(b**bs), leetspeak folded inside words (s3xy, b1tch), s p a c e d and s.p.l.i.t letters joined
(and split into words where they spanned several: segment.py), runs of a
repeated letter collapsed (sooo hottt). Every step keeps a map from each normalised
character back to the original text, so reviewers see the real excerpt.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cached_property
from typing import Any

import regex

from gateway.rules import segment

try:
    from gateway.rules._fold import fold_ascii, set_segmenter
except ImportError:  # built without a C compiler: _ascii_steps' regular expressions do the same
    fold_ascii = None
    set_segmenter = None

# Splits a run of spaced letters that spans several words ("s e n d n u d e s") into them.
SEGMENTER = segment.load()
if set_segmenter is not None:
    set_segmenter(SEGMENTER.segment)  # the compiled steps split runs with the same words

# Latin lookalikes from other scripts (a subset of Unicode's confusables that matters here).
HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "к": "k", "м": "m", "т": "t", "в": "b", "н": "h",
    "ё": "e", "ү": "y", "ɡ": "g", "ı": "i", "α": "a", "ο": "o", "ε": "e", "ι": "i", "κ": "k",
    "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "β": "b", "η": "n", "ω": "w", "μ": "u",
    "ѵ": "v", "ԛ": "q", "ԝ": "w", "ɑ": "a", "ℓ": "l", "ø": "o", "ð": "d", "þ": "p", "ß": "ss",
    # Small capitals, which NFKD leaves alone.
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Letters in boxes and the regional indicators ("🅢🅔🅧🅨", "🇸🇪🇽🇾"), which NFKD leaves alone.
    **{chr(first + i): chr(ord("a") + i) for first in (0x1F130, 0x1F150, 0x1F170, 0x1F1E6)
       for i in range(26)},
})
# Emoji that stand for a word in harassment (a knife for a threat, an aubergine): read as that
# word, so rules and the classifier see it. Others carry no word and are left alone. A kiss
# face is "kisses", as a sign-off reads ("thanks 😘" is no "kiss you").
EMOJI_WORDS = {
    "\U0001f52a": "knife", "\U0001f5e1": "knife", "\U0001f52b": "gun", "\U0001f4a3": "bomb",
    "\U0001fa93": "axe", "\u26b0": "coffin", "\U0001fa78": "blood", "\U0001f48b": "kisses",
    "\U0001f618": "kisses", "\U0001f617": "kisses", "\U0001f61a": "kisses", "\U0001f619": "kisses",
    "\U0001f60d": "love", "\U0001f970": "love", "\U0001f63b": "love", "\U0001f445": "lick",
    "\U0001f346": "dick", "\U0001f351": "ass", "\U0001f4a6": "cum", "\U0001f975": "hot",
    "\U0001f48d": "ring", "\U0001f48f": "kisses", "\U0001f491": "couple",
    # Animals that insult when said of a person ("the fat 🐄 at the desk").
    "\U0001f404": "cow", "\U0001f42e": "cow", "\U0001f416": "pig", "\U0001f437": "pig",
    "\U0001f415": "dog", "\U0001f436": "dog",
    # Things a stalker points at: her car, her house, her photos, his eyes on her.
    "\U0001f697": "car", "\U0001f3e0": "house", "\U0001f4f8": "photos", "\U0001f440": "watching",
}
_EMOJI = regex.compile("|".join(sorted(EMOJI_WORDS)))
# Words people mask with asterisks ("b*tch", "b**bs", "f***ing", "p*ta"): a masked word that
# fits exactly one of them, each asterisk one letter, reads as that word. Other masked words
# are left as written ("pr*ce" is no word here).
MASKED_WORDS = (
    "fuck fucking fucker fucked shit bitch bitches slut sluts whore whores hoe cunt cock dick "
    "pussy boobs boob tits titties ass arse asshole sexy sex nude nudes naked horny hot hott "
    "thot rape kill hurt stab dead die bastard wank "
    "puta putas zorra cono tetas culo follar follarte polla perra guarra madre romper partir "
    "matar mierda pinche chingar verga pendeja cabrona "
    "fotze schlampe titten arsch ficken vogeln geil hure nutte "
    "pute salope seins cul nichons chatte bite connasse conne").split()
_MASKED_BY_LENGTH = {length: [w for w in MASKED_WORDS if len(w) == length]
                     for length in {len(w) for w in MASKED_WORDS}}
_MASKED = re.compile(r"(?<![\w*])[a-z]+\*[a-z*]*(?![\w*])")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                      "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"})

_NON_ASCII = regex.compile(r"[^\x00-\x7f]+")
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Mn}\p{Me}\u200b-\u200f\u2060-\u2064\ufeff\u00ad]+")
# A word that is a number and its unit is not leet: "7h45", "6pm", "2nd", "4g", "20kg".
QUANTITY_UNITS = ("h", "am", "pm", "st", "nd", "rd", "th", "er", "re", "e", "eme", "o", "a",
                  "min", "mins", "hr", "hrs", "km", "kg", "gb", "mb", "tb", "cm", "mm", "ml",
                  "kw", "kwh", "k", "m", "x", "s", "g", "d", "p")
_QUANTITY = (r"[0-9]+(?:h[0-9]+|%s)(?![\w@$!|+€])"
             % "|".join(sorted(QUANTITY_UNITS, key=len, reverse=True)))
# A word with at least one letter and at least one leet character inside it, up to its last
# letter or digit, or a last "@" after a letter ("zorr@", "put@": an "a" that ends the word).
_LEET_WORD = re.compile(r"(?<![\w@$!|+€])(?!%s)(?=[\w@$!|+€]*[a-z])(?=[\w@$!|+€]*[0-9@$!|+€])"
                        r"[\w@$!|+€]*(?:\w|(?<=[a-z])@)" % _QUANTITY)
# Starts with the rare characters so the scan skips ahead quickly.
_LEET_NEIGHBOURS = re.compile(r"[0-9@$!|+€](?:(?<=[a-z].)|(?=[a-z]))")
# Two or more single letters, each followed by one separator: "s e x y", "s.e.x", "s-e-x", "s. e. x".
# At most SPACED_LETTERS in one run: no word is that long, and without a bound a hostile text of
# single letters that never reach a word edge ("a_ a_ a_ ...") costs quadratic time. A letter
# after an apostrophe ends a word ("it's a", "i'm a"): it starts no run.
SPACED_LETTERS = 64
_SPACED = re.compile(r"(?<!')\b[a-z](?:[.\-_*~·•] ?| )(?:[a-z](?:[.\-_*~·•] ?| )){0,%d}[a-z]\b"
                     % (SPACED_LETTERS - 2))
# The same on ASCII text, where ASCII word edges are the same and twice as fast to test.
_SPACED_ASCII = re.compile(r"(?<!')\b[a-z](?:[.\-_*~] ?| )(?:[a-z](?:[.\-_*~] ?| )){0,%d}[a-z]\b"
                           % (SPACED_LETTERS - 2), re.ASCII)
_MARK = re.compile(r"[.\-_*~·•] ?")
_PLAIN_SPACE = re.compile(r"(?<![.\-_*~·•]) ")
_WORD_BREAK = re.compile(r"(?<=[a-z]) (?=[a-z])")
_REPEATS = re.compile(r"([a-z])\1\1+")  # faster than \1{2,} in re
_SEPARATORS = re.compile(r"[ .\-_*~·•]")
# Any run of whitespace is one space (single spaces are left alone, so few matches).
_WHITESPACE = re.compile(r"(?:[^\S ]| (?=\s))\s*")
# Dots or underscores gluing words ("you.are.so.hot"): a space.
_GLUE = re.compile(r"[._~·•](?<=[a-z].)(?=[a-z])")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
# Text after a right-to-left override (U+202E), up to its end (U+202C) or the line's, is shown
# mirrored: "\u202esedun dnes" reads "send nudes". Put in reading order before the marks go.
_OVERRIDDEN = regex.compile(r"\u202e([^\u202c\n]*)\u202c?")


class Normalised:
    """Normalised text and the original it came from. `lines` is the same text with line
    breaks kept ("\n" where `text` has a space that stands for a line break)."""

    def __init__(self, text: str, original: str, lines: str | None = None) -> None:
        self.text = text
        self.original = original
        self.lines = text if lines is None else lines

    @cached_property
    def offsets(self) -> list[int]:
        """offsets[i] is the index in the original of text[i] (built on first use)."""
        text, offsets = _pipeline(self.original, _substitute, list(range(len(self.original))))
        if text != self.text:  # cannot happen while both paths run the same steps
            raise AssertionError("normalisation paths disagree")
        return offsets

    def excerpt(self, start: int, end: int, context: int = 40) -> str:
        """The original text around normalised span [start, end)."""
        if not self.offsets:
            return ""
        first = self.offsets[min(start, len(self.offsets) - 1)]
        # The span ends where the next normalised character from further on begins: a
        # collapsed "TTT", a joined "s e x" or an emoji read as a word is then shown whole.
        offsets, after = self.offsets, max(start, end - 1)
        while end < len(offsets) and offsets[end] <= offsets[after]:
            end += 1
        last = offsets[end] if end < len(offsets) else len(self.original)
        while last > first + 1 and self.original[last - 1].isspace():
            last -= 1
        before = max(0, first - context)
        after = min(len(self.original), last + context)
        snippet = self.original[before:first] + "[[" + self.original[first:last] + "]]" + \
            self.original[last:after]
        return " ".join(snippet.split())


def _substitute(pattern: Any, replace: Callable[[Any], str] | str,
                text: str, offsets: list[int]) -> tuple[str, list[int]]:
    """pattern.sub that keeps the offset map: replaced characters map into their match."""
    pieces: list[str] = []
    maps: list[list[int]] = []
    position = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        replacement = replace(match) if callable(replace) else match.expand(replace)
        pieces.append(text[position:start])
        maps.append(offsets[position:start])
        pieces.append(replacement)
        maps.append(_align(match.group(), replacement, offsets[start:end] or
                           [offsets[start - 1] if start else 0]))
        position = end
    if not pieces:
        return text, offsets
    pieces.append(text[position:])
    maps.append(offsets[position:])
    return "".join(pieces), [index for chunk in maps for index in chunk]


def _align(source: str, replacement: str, span: list[int]) -> list[int]:
    """Offsets for the replacement: each kept character maps to where it came from."""
    mapped: list[int] = []
    position = 0
    for char in replacement:
        found = source.find(char, position)
        if found == -1 or len(source) != len(span):
            # Not a plain deletion (a decomposition or a translation): spread proportionally.
            return [span[min(i * len(span) // max(len(replacement), 1), len(span) - 1)]
                    for i in range(len(replacement))]
        mapped.append(span[found])
        position = found + 1
    return mapped


def _decompose(match: regex.Match[str]) -> str:
    return unicodedata.normalize("NFKD", match.group())


# A replacement is a function of the match or a template such as r"\1".
Step = Callable[[Any, Any, str, list[int]], tuple[str, list[int]]]
_ANY = regex.compile(r".", regex.DOTALL)


def _fast(pattern: Any, replace: Callable[[Any], str] | str, text: str,
          offsets: list[int]) -> tuple[str, list[int]]:
    if pattern is _WHITESPACE:  # the pattern's result, several times faster, but see below
        return _collapse_whitespace(text), offsets
    return pattern.sub(replace, text), offsets


def _collapse_whitespace(text: str) -> str:
    """Whitespace collapsed as _WHITESPACE does, except that a run holding a line break
    becomes one "\n" instead of one space: the same text once "\n" is read as a space, with
    the same offsets, and the line breaks kept for what needs them (Normalised.lines)."""
    lines = [joined for joined in (" ".join(line.split()) for line in text.splitlines())
             if joined]
    if not lines:
        return " " if text else ""
    return (" " if text[0].isspace() else "") + "\n".join(lines) + \
        (" " if text[-1].isspace() else "")


def _pipeline(text: str, step: Step, offsets: list[int]) -> tuple[str, list[int]]:
    """The normalisation steps, in order; `step` either keeps the offset map or not."""
    if not text.isascii():
        text = text.translate(_QUOTES)
        if "\u202e" in text:
            text, offsets = step(_OVERRIDDEN, lambda m: m.group(1)[::-1], text, offsets)
        if _EMOJI.search(text):
            text, offsets = step(_EMOJI, lambda m: f" {EMOJI_WORDS[m.group()]} ", text, offsets)
        text, offsets = step(_NON_ASCII, _decompose, text, offsets)
        text, offsets = step(_INVISIBLE, "", text, offsets)
    lowered = text.lower()
    if len(lowered) == len(text):
        text = lowered
    else:
        text, offsets = step(_ANY, lambda m: m.group().lower(), text, offsets)
    if not text.isascii():
        folded = text.translate(HOMOGLYPHS)
        if len(folded) == len(text):
            text = folded
        else:
            text, offsets = step(_NON_ASCII, lambda m: m.group().translate(HOMOGLYPHS), text,
                                 offsets)
    if "*" in text:
        text, offsets = step(_MASKED, _unmask, text, offsets)
    if step is _fast and fold_ascii is not None and text.isascii():
        return fold_ascii(text), offsets  # _ascii_steps compiled (_fold.c), ~7x cheaper
    return _ascii_steps(text, step, offsets)


def _ascii_steps(text: str, step: Step, offsets: list[int]) -> tuple[str, list[int]]:
    """The steps that read only ASCII punctuation and letters (_fold.c does the same)."""
    if _LEET_NEIGHBOURS.search(text):
        text, offsets = step(_LEET_WORD, lambda m: m.group().translate(LEET), text, offsets)
    text, offsets = step(_SPACED_ASCII if text.isascii() else _SPACED, _join_letters, text,
                         offsets)
    text, offsets = step(_WHITESPACE, " ", text, offsets)
    text, offsets = step(_GLUE, " ", text, offsets)
    text, offsets = step(_REPEATS, r"\1", text, offsets)
    return text, offsets


def _unmask(match: Any) -> str:
    masked = match.group()
    fits = [word for word in _MASKED_BY_LENGTH.get(len(masked), ())
            if all(m == w or m == "*" for m, w in zip(masked, word))]
    return fits[0] if len(fits) == 1 else masked


def _join_letters(match: Any) -> str:
    """ "s e x" -> "sex"; "s.e.n.d n.u.d.e.s" -> "send nudes": when letters are split by both
    marks and plain spaces, the rarer of the two separates words ("s a w y o u. y o u w e r e"
    is "saw you" and "you were": a full stop between spaced letters ends a word)."""
    run = match.group()
    marks = len(_MARK.findall(run))
    spaces = len(_PLAIN_SPACE.findall(run))
    if marks and spaces:
        breaks = _WORD_BREAK if marks >= spaces else _MARK
        joined = " ".join(_SEPARATORS.sub("", word) for word in breaks.split(run))
    else:
        joined = _SEPARATORS.sub("", run)
    return SEGMENTER.segment(joined)


def normalise(text: str) -> Normalised:
    """Normalised text; the map back to the original is built only when an excerpt needs it."""
    lines, _ = _pipeline(text, _fast, [])
    return Normalised(lines.replace("\n", " "), text, lines)


def normalise_term(term: str) -> str:
    """A rule's literal term, normalised the way message text is."""
    return " ".join(normalise(term).text.split())
