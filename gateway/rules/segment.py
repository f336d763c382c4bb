"""Words back into letters that were spaced out across words: "s e n d n u d e s" reads
"send nudes", "t e q u i e r o" reads "te quiero".

Normalisation joins s p a c e d letters into one run ("sendnudes"); a run that spans several
words is then split again where a known word list splits it most plausibly (fewest, most
frequent words: a unigram model). A run that is one known word, or that the words do not
cover entirely, stays as it was joined.

The word list (words.txt beside this file) is built from the labelled replies the model is
trained on, read as plain lower-case words without accents, never through the normalisation
that uses it:

    python -m gateway.rules.segment tests/corpus/inbound rules/training
"""

from __future__ import annotations

import math
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import regex

WORDS_FILE = Path(__file__).with_name("words.txt")
MIN_RUN = 5          # letters: shorter runs are initials and codes ("u s a", "a b c")
MIN_COUNT = 3        # times a word must occur in the replies to be known
# Each word costs this much beyond its own rarity, so a split into more words must be much
# more plausible than a split into fewer ("therapist" stays one word before "the rapist").
WORD_PENALTY = 4.0
# Single letters that are words of the four languages ("a", "y", "o") or of text-speak ("u",
# "r", "w" for with, "x" and "q" for por and que, "c" for c'est, "k" and "n").
SINGLE_LETTERS = frozenset("aiyoeu" "rwxqckn")
_LONGEST = 24        # letters: no word looked for is longer
_PLAIN_WORD = regex.compile(r"[a-z]+")
_REPEATS = regex.compile(r"([a-z])\1\1+")  # as normalisation collapses them


def plain_words(text: str) -> Iterator[str]:
    """The words of text as the word list counts them: lower case, accents dropped."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c)).replace("ß", "ss")
    return iter(_PLAIN_WORD.findall(folded))


class Segmenter:
    def __init__(self, counts: dict[str, int]) -> None:
        total = sum(counts.values()) or 1
        self.costs = {word: math.log(total / count) + WORD_PENALTY
                      for word, count in counts.items()}
        self.segment = lru_cache(maxsize=4096)(self._segment)

    def _segment(self, joined: str) -> str:
        """The run with spaces where the words split it, or the run itself."""
        return " ".join(self._split(piece) for piece in joined.split(" "))

    def _split(self, run: str) -> str:
        run = _REPEATS.sub(r"\1", run)
        if len(run) < MIN_RUN or run in self.costs:
            return run
        # best[i]: (cost, start of the last word) of the cheapest split of run[:i].
        best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * len(run)
        for end in range(1, len(run) + 1):
            for start in range(max(0, end - _LONGEST), end):
                cost = self.costs.get(run[start:end])
                if cost is not None and best[start][0] + cost < best[end][0]:
                    best[end] = (best[start][0] + cost, start)
        if best[-1][0] == math.inf:
            return run
        words: list[str] = []
        end = len(run)
        while end:
            start = best[end][1]
            words.append(run[start:end])
            end = start
        return " ".join(reversed(words))


def count_words(texts: Iterable[str]) -> dict[str, int]:
    """Known words and how often they occur: MIN_COUNT times at least, single letters only
    where they are words."""
    counts = Counter(word for text in texts for word in plain_words(text)
                     if len(word) <= _LONGEST)
    return {word: count for word, count in sorted(counts.items())
            if count >= MIN_COUNT and (len(word) > 1 or word in SINGLE_LETTERS)}


def load(path: Path = WORDS_FILE) -> Segmenter:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            word, _, count = line.partition(" ")
            counts[word] = int(count)
    return Segmenter(counts)


def write_word_list(sources: Iterable[Path], path: Path = WORDS_FILE) -> int:
    """The word list of the replies `veil rules train` reads from the same sources."""
    from gateway.rules.training import load_examples  # it normalises: imported only here

    counts = count_words(example.text for example in load_examples(sources))
    path.write_text("".join(f"{word} {count}\n" for word, count in counts.items()),
                    encoding="utf-8")
    return len(counts)


if __name__ == "__main__":
    written = write_word_list([Path(argument) for argument in sys.argv[1:]])
    print(f"{WORDS_FILE}: {written} words")
