"""Every agent's real identity compiled into one automaton, and what replaces each hit.

Names are matched case- and accent-insensitively on word edges: the text is folded one
character to one character (é -> e, Á -> a), so a hit in the folded text has the same span in
the original and is replaced there. Decomposed text (e + combining accent) is composed first.
All names, nicknames, name parts, addresses and address local parts of all agents go into one
Aho-Corasick automaton: one pass over the text whatever the size of the directory. Phones are
matched by their digits, whatever the separators.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick
import ahocorasick_rs
import regex

from gateway.config import Agent, Directory, fold_name

try:
    from gateway._wire import EdgeKeys
except ImportError:  # no C compiler at install time: the ASCII keys go to ahocorasick_rs too
    EdgeKeys = None

PHONE_REPLACEMENT = "[number withheld]"

# Single first or last names that are also ordinary words only count when capitalised.
_COMMON_WORDS = frozenset(["may", "will", "hope", "grace", "rose", "mark", "bill", "faith", "joy", "dawn", "sky", "summer", "autumn", "april", "june", "august", "iris", "ivy", "lily", "daisy", "ruby", "pearl", "amber", "crystal", "destiny", "charity", "patience", "violet", "rich", "gay", "jack", "pat", "sue", "frank", "earl", "duke", "king", "page", "hunter", "bond", "young", "brown", "green", "white", "black", "gold", "silver", "price", "long", "little", "hill", "wood", "stone", "ford", "rice", "lane", "art", "van", "bob", "dick"])


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {code: chr(code).lower() for code in range(ord("A"), ord("Z") + 1)}
    # Latin, Greek, Cyrillic, letterlike symbols, and full-width forms (Ｊａｎｅ).
    for code in (*range(0x80, 0x2500), *range(0xFF00, 0xFFF0)):
        char = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFKD", char)
                       if not unicodedata.combining(c))
        lowered = base.lower()
        if len(lowered) == 1 and lowered != char:
            table[code] = lowered
    return table


_FOLD = _fold_table()
_COMBINING = regex.compile(r"\p{M}")


# Invisible characters a reader does not see inside a word: soft hyphen, zero-width space and
# non-joiner, direction marks, word joiner, byte-order mark. (The zero-width joiner stays: emoji.)
_INVISIBLE_CHARS = "\u00ad\u200b\u200c\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INVISIBLE = regex.compile(f"[{_INVISIBLE_CHARS}]")


def prepare(text: str) -> str:
    """The text as a reader sees it, ready for folding: invisible characters removed (so
    'Ja\u00adne' reads 'Jane') and decomposed accents composed (one character per character)."""
    if text.isascii():
        return text
    # Substring tests and the C normalisation check first: scanning every character with a
    # regex class costs more than all the rest of the matching.
    if any(char in text for char in _INVISIBLE_CHARS):
        text = _INVISIBLE.sub("", text)
    if _latin_1(text):
        return text  # no mark to compose: every Latin-1 text is already NFC
    if not unicodedata.is_normalized("NFC", text) and _COMBINING.search(text):
        return unicodedata.normalize("NFC", text)
    return text


def _latin_1(text: str) -> bool:
    """True when every character of `text` is in Latin-1 (encoding a text Python stores one
    byte per character is a copy)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


_NON_ASCII = regex.compile(r"[^\x00-\x7f]+")
# Every ASCII character that is no letter or digit reads as a space (one for one: spans stay).
_ASCII_EDGES = {code: " " for code in range(128) if not chr(code).isalnum()}
# The same as a byte table, for ASCII text encoded.
_ASCII_EDGE_BYTES = bytes(code if chr(code).isalnum() and code < 128 else 32
                          for code in range(256))
_MOSTLY_ASCII = 16  # the anchored scan takes text with at most 1 in 16 characters beyond ASCII


def _as_edges(text: str) -> str:
    """`text` with every character that is no letter or digit as a space."""
    return "".join(char if char.isalnum() else " " for char in text)


class _LongerLowerCase(Exception):
    pass


def _fold_run(run: str) -> str:
    lowered = run.lower()
    if len(lowered) != len(run):
        raise _LongerLowerCase
    return lowered.translate(_FOLD)


def fold_text(text: str) -> str:
    """Lower case without accents, one character for one character (spans stay aligned)."""
    if text.isascii():
        return text.lower()
    if "\u03a3" not in text:  # without a capital sigma, lower case is one letter at a time
        # Folding the few letters beyond ASCII first usually leaves ASCII, which str.lower
        # does many times quicker than text with wider characters.
        try:
            folded = str(_NON_ASCII.sub(lambda run: _fold_run(run.group()), text))
        except _LongerLowerCase:
            return text.translate(_FOLD)  # as below
        if folded.isascii():
            return folded.lower()
    lowered = text.lower()
    if len(lowered) != len(text):  # a rare letter whose lower case is longer
        return text.translate(_FOLD)
    return str(_NON_ASCII.sub(lambda run: run.group().translate(_FOLD), lowered))


@dataclass(frozen=True)
class Target:
    kind: str          # "name" | "address" | "phone"
    agent: Agent
    replacement: str
    strict_case: bool = False  # a common word: only a capitalised occurrence is a name


def _found_anywhere(target: Target) -> bool:
    """A whole address is identity wherever it stands, even glued to letters."""
    return target.kind == "address" and "@" in target.replacement


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    kind: str
    agent: Agent
    replacement: str


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.combining(char) != 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# Plain `re` without look-behind lets the engine skip ahead to digits; the edge and a leading
# "+" or "(" are checked by hand (several times faster on prose).
_PHONE_LIKE = re.compile(r"[0-9][0-9 \t().\-/\u00a0]{4,24}[0-9](?![0-9])")


_PHONE_RUN = re.compile(r"[0-9 \t().\-/\u00a0]*")  # the characters a phone-like match is made of
_DIGIT_CHARS = "0123456789"
_FEW_DIGITS = 64


def digit_positions_in_python(text: str, most: int) -> list[int] | None:
    """The positions of the ASCII digits in `text`, in order; None when there are more than
    `most`."""
    positions: list[int] = []
    for digit in _DIGIT_CHARS:  # str.find looks for one character at memchr speed
        position = text.find(digit)
        while position != -1:
            if len(positions) == most:
                return None
            positions.append(position)
            position = text.find(digit, position + 1)
    return sorted(positions)


try:
    from gateway._wire import digit_positions as _digit_positions  # one pass, not ten
except ImportError:  # no C compiler at install time
    _digit_positions = digit_positions_in_python


def _phone_like(text: str) -> list[re.Match[str]]:
    """What _PHONE_LIKE.finditer(text) finds, without running the regex over text that holds
    no digit (scanning for its first character costs more than all the rest of the matching).

    A match starts at a digit and lies inside one run of phone characters, and the regex reads
    nothing outside that run, so searching each run that holds a digit from its first digit to
    its end finds exactly the matches a search of the whole text finds there."""
    if len(text) < 256:
        return list(_PHONE_LIKE.finditer(text))  # a header field: the regex alone is quicker
    positions = _digit_positions(text, _FEW_DIGITS)
    if positions is None:
        return list(_PHONE_LIKE.finditer(text))  # digits everywhere: one regex pass
    if len(positions) < 2:
        return []  # a match starts and ends with a digit
    found: list[re.Match[str]] = []
    run_end = 0
    for position in positions:
        if position < run_end:
            continue  # inside a run already searched
        run = _PHONE_RUN.match(text, position)
        run_end = run.end() if run else position + 1
        found.extend(_PHONE_LIKE.finditer(text, position, run_end))
    return found


def _same_number(found: str, phone: str) -> bool:
    """Same number when the last nine digits agree (country code and trunk prefix vary)."""
    if len(phone) < 9 or len(found) < 9:
        return found == phone
    return found[-9:] == phone[-9:]


_TRANSLITERATIONS = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                      "Ü": "Ue", "æ": "ae", "Æ": "Ae", "ø": "oe", "Ø": "Oe", "å": "aa",
                      "Å": "Aa", "œ": "oe", "Œ": "Oe"}


def _spellings(name: str) -> tuple[str, ...]:
    """The name, and its German/Nordic transliteration (Müller -> Mueller) when it differs."""
    composed = unicodedata.normalize("NFC", name)
    spelled = "".join(_TRANSLITERATIONS.get(char, char) for char in composed)
    return (name,) if spelled == composed else (name, spelled)


def _ascii_key_finder(keys: list[bytes]) -> Callable[[str], list[tuple[int, int, int]]]:
    """(key index, start, end) of every key in b" " + folded + b" " with every byte that is no
    letter or digit read as a space, for ASCII folded text."""
    if not keys:
        return lambda folded: []
    if EdgeKeys is not None:
        return EdgeKeys(keys, _ASCII_EDGE_BYTES).find
    automaton = ahocorasick_rs.BytesAhoCorasick(keys)
    return lambda folded: automaton.find_matches_as_indexes(
        b" " + folded.encode("ascii").translate(_ASCII_EDGE_BYTES) + b" ", overlapping=True)


class IdentityPatterns:
    """Finds and replaces the identity of every agent in a directory."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.automaton = ahocorasick.Automaton()
        entries: dict[str, list[Target]] = {}

        def add(key: str, target: Target) -> None:
            if key:
                entries.setdefault(key, []).append(target)

        for agent in directory.agents:
            alias_tokens = agent.alias_name.split()
            alias_first, alias_last = alias_tokens[0], alias_tokens[-1]
            for address in agent.addresses:
                add(address.lower(), Target("address", agent, agent.alias_address))
                local = address.split("@")[0].lower()
                if len(local) >= 4:
                    add(local, Target("address", agent, agent.alias_address.split("@")[0]))
            for name in (spelling for real in (agent.name, *agent.also_known_as)
                         for spelling in _spellings(real)):
                tokens = fold_name(name).split()
                if not tokens:
                    continue
                whole = len(tokens) > 1 or name in _spellings(agent.name)
                add(" ".join(tokens), Target("name", agent,
                                             agent.alias_name if whole else alias_first,
                                             " ".join(tokens) in _COMMON_WORDS))
                if len(tokens) > 1:
                    add(f"{tokens[-1]}, {' '.join(tokens[:-1])}",
                        Target("name", agent, agent.alias_name))
            for spelling in _spellings(agent.name):
                tokens = fold_name(spelling).split()
                if len(tokens) < 2:
                    continue
                for token, replacement in ((tokens[0], alias_first), (tokens[-1], alias_last)):
                    if len(token) >= 2:
                        add(token, Target("name", agent, replacement, token in _COMMON_WORDS))
        for key, targets in entries.items():
            self.automaton.add_word(key, (len(key), tuple(targets)))
        if entries:
            self.automaton.make_automaton()
        # The same keys for the word-anchored scan (see _anchored_candidates): a key that must
        # stand on word edges is looked for between spaces in the text with every character
        # that is no letter or digit read as a space; a whole address, found even glued to
        # letters, is looked for as it is, in text that holds an "@".
        # The anchored scan reads every character of every body several times per message:
        # ahocorasick_rs (a DFA for small key sets) scans about twice as fast as the trie
        # walk; the full scan above stays pyahocorasick, and tests hold the two to one result.
        self._anywhere = ahocorasick.Automaton()
        anchored: dict[str, dict[str, tuple[Target, ...]]] = {}
        for key, targets in entries.items():
            if _found_anywhere(targets[0]):
                self._anywhere.add_word(key, (len(key), tuple(targets)))
            else:
                anchored.setdefault(f" {_as_edges(key)} ", {})[key] = tuple(targets)
        self._anchored_keys = tuple(anchored.values())
        self._anchored = ahocorasick_rs.AhoCorasick(list(anchored)) if anchored else None
        # ASCII text (nearly all of it) is scanned as bytes for the keys it can hold, the
        # ASCII ones: a byte table translates it many times quicker than a dict, and the
        # automaton reads bytes in place where it copies a str to UTF-8 and converts offsets.
        # Compiled (gateway/_wire.c), the scan reads the folded text through the byte table
        # itself and tries keys only where a word starts: about 2.5x quicker again.
        ascii_keys = [key for key in anchored if key.isascii()]
        self._ascii_keys = tuple(anchored[key] for key in ascii_keys)
        self._ascii_key_texts = tuple(ascii_keys)
        self._find_ascii_keys = _ascii_key_finder([key.encode("ascii") for key in ascii_keys])
        if len(self._anywhere):
            self._anywhere.make_automaton()
        self.phones: list[tuple[str, Agent]] = [
            (_digits(phone), agent) for agent in directory.agents for phone in agent.phones]
        self._remembered: dict[str, tuple[Hit, ...]] = {}
        self._by_last_nine: dict[str, Agent] = {}
        self._by_short_number: dict[str, Agent] = {}
        for number, owner in reversed(self.phones):
            if len(number) >= 9:
                self._by_last_nine[number[-9:]] = owner
            else:
                self._by_short_number[number] = owner

    def hits(self, text: str) -> list[Hit]:
        """Every identity in `text` (as given: callers pass `prepare`d text), in order."""
        if not text:
            return []
        if len(text) > _REMEMBERED_LENGTH:
            return self._hits(text)
        # Header fields and names come back many times (rewrite, then the leak check on the
        # same field, and the same From line in every message of an agent): scanned once.
        remembered = self._remembered.get(text)
        if remembered is None:
            if len(self._remembered) >= _REMEMBERED_TEXTS:
                self._remembered.clear()
            remembered = self._remembered[text] = tuple(self._hits(text))
        return list(remembered)

    def _hits(self, text: str) -> list[Hit]:
        found: list[Hit] = []
        if len(self.automaton):
            folded = fold_text(text)
            size = len(folded)
            candidates = self._anchored_candidates(folded)
            if candidates is None:
                candidates = self._all_candidates(folded)
            for start, end, targets in candidates:
                # Most candidates sit inside a longer word ("lea" in "please"): reject cheaply.
                target = targets[0]
                if _found_anywhere(target):
                    pass  # a whole address shows wherever it stands, even glued to letters
                elif (end < size and folded[end].isalnum()) or \
                        (start and folded[start - 1].isalnum()) or \
                        not self._on_word_edges(folded, start, end, target.kind):
                    continue
                if target.strict_case and not text[start:start + 1].isupper():
                    continue
                found.append(Hit(start, end, target.kind, target.agent, target.replacement))
        found.extend(self.phone_hits(text))
        found.sort(key=lambda hit: (hit.start, -(hit.end - hit.start)))
        return _without_overlaps(found)

    def _all_candidates(self, folded: str) -> Iterator[tuple[int, int, tuple[Target, ...]]]:
        """(start, end, targets) of every occurrence of every key, inside words too."""
        for end_index, (length, targets) in self.automaton.iter(folded):
            yield end_index - length + 1, end_index + 1, targets

    def _anchored_candidates(self, folded: str
                             ) -> list[tuple[int, int, tuple[Target, ...]]] | None:
        """The occurrences of keys that _hits can accept: a key that must stand on word edges
        where no letter or digit comes before or after it, a whole address anywhere. None when
        the text has too many characters beyond ASCII to be read this way (then every
        occurrence is given).

        The automaton of all keys costs most per character of text because of the many
        letters keys start with; anchored on the space before a word it is quicker, and it
        never offers the keys inside words ("lea" in "please", "doe" in "does")."""
        found: list[tuple[int, int, tuple[Target, ...]]] = []
        matches: list[tuple[int, int, int]] = []
        if folded.isascii():
            # The ASCII keys; the text as bytes, every byte that is no letter or digit a space.
            keys = self._ascii_keys
            matches = self._find_ascii_keys(folded)
        else:
            beyond_ascii = len(folded) - len(folded.encode("ascii", "ignore"))
            if beyond_ascii * _MOSTLY_ASCII > len(folded):
                return None
            keys = self._anchored_keys
            if self._anchored is not None:
                edges_text = _NON_ASCII.sub(lambda run: _as_edges(run.group()),
                                            folded.translate(_ASCII_EDGES))
                matches = self._anchored.find_matches_as_indexes(f" {edges_text} ",
                                                                 overlapping=True)
        if matches:
            # Index i + 1 of the scanned text is index i of the folded text; a match starts
            # with the space before its key and ends with the space after it.
            for index, start, last in matches:
                end = last - 2
                targets = keys[index].get(folded[start:end])
                if targets is not None:  # not another key with other punctuation
                    found.append((start, end, targets))
        if len(self._anywhere) and "@" in folded:
            for end_index, (length, targets) in self._anywhere.iter(folded):
                found.append((end_index - length + 1, end_index + 1, targets))
        return found

    @staticmethod
    def _on_word_edges(folded: str, start: int, end: int, kind: str) -> bool:
        before = folded[start - 1] if start > 0 else " "
        after = folded[end] if end < len(folded) else " "
        if _is_word(before) or _is_word(after):
            return False
        if kind == "name":
            # A name inside an address or a dotted identifier is not a name there.
            if before in "@.+-" and start > 1 and _is_word(folded[start - 2]):
                return False
            if after in "@":
                return False
            if after in ".+-" and end + 1 < len(folded) and _is_word(folded[end + 1]):
                return False
        # A local part followed by "@" belongs to another address.
        return not (kind == "address" and after == "@")

    def phone_hits(self, text: str) -> list[Hit]:
        if not self.phones:
            return []
        hits: list[Hit] = []
        for match in _phone_like(text):
            start = match.start()
            if start > 0 and text[start - 1] == "(":
                start -= 1
            if start > 0 and text[start - 1] == "+":
                start -= 1
            if start > 0 and _is_word(text[start - 1]):
                continue
            digits = _digits(match.group())
            # Same rule as _same_number, as two look-ups instead of a loop over every phone.
            agent = (self._by_last_nine.get(digits[-9:]) if len(digits) >= 9 else None) \
                or self._by_short_number.get(digits)
            if agent is not None:
                hits.append(Hit(start, match.end(), "phone", agent, PHONE_REPLACEMENT))
        return hits

    def filename_hits(self, text: str) -> list[Hit]:
        """Hits in a file name, where dots, dashes and underscores separate words as spaces do
        ('Jane_Doe.pdf'), besides the hits an ordinary text has (addresses keep their dots)."""
        spaced = text.translate(_FILENAME_SEPARATORS)
        found = self.hits(text) + (self.hits(spaced) if spaced != text else [])
        found.sort(key=lambda hit: (hit.start, -(hit.end - hit.start)))
        return _without_overlaps(found)

    def replace(self, text: str, style: str = "plain",
                filename: bool = False) -> tuple[str, list[Hit]]:
        """The text with every identity replaced; `style` "html" escapes replacements."""
        text = prepare(text)
        hits = self.filename_hits(text) if filename else self.hits(text)
        if not hits:
            return text, []
        pieces: list[str] = []
        position = 0
        for hit in hits:
            pieces.append(text[position:hit.start])
            replacement = hit.replacement
            original = text[hit.start:hit.end]
            if hit.kind == "name" and original.isupper() and len(original) > 1:
                replacement = replacement.upper()
            if style == "html":
                replacement = replacement.replace("&", "&amp;").replace("<", "&lt;")
            pieces.append(replacement)
            position = hit.end
        pieces.append(text[position:])
        return "".join(pieces), hits


_REMEMBERED_LENGTH = 1024  # texts up to this long have their hits remembered
_REMEMBERED_TEXTS = 4096  # at most this many (forgotten all at once when full)
_FILENAME_SEPARATORS = str.maketrans("._-+~", "     ")


def _without_overlaps(hits: list[Hit]) -> list[Hit]:
    """Leftmost, then longest, hits that do not overlap."""
    kept: list[Hit] = []
    for hit in hits:
        if kept and hit.start < kept[-1].end:
            continue
        kept.append(hit)
    return kept


def factored_alternation(words: Iterable[str]) -> str:
    """A regex alternation of `words` grouped by first letter ("a(?:bbr|)|b(?:di|do|)"): re
    tries the branches of an alternation one after another, so grouped it tries a few where
    it would try them all. It matches what the plain alternation matches."""
    branches: dict[str, list[str]] = {}
    for word in sorted(set(words)):
        branches.setdefault(word[:1], []).append(word[1:])
    return "(?:" + "|".join(
        re.escape(first) + "(?:" + "|".join(re.escape(rest) for rest in
                                              sorted(rests, key=len, reverse=True)) + ")"
        for first, rests in branches.items()) + ")"


@lru_cache(maxsize=8)
def patterns_for(directory: Directory) -> IdentityPatterns:
    """Compiled once per directory (the directory is loaded once at start-up)."""
    return IdentityPatterns(directory)
