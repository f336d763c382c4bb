"""A learned harassment classifier: one more signal beside the rules.

Phrase and proximity rules catch the wordings someone thought of; a linear model over words,
word pairs and word stems, trained on labelled replies in every category and language, also
weighs the wordings nobody wrote a rule for. It reads the same normalised text the rules read
(so evasions are already undone) and judges each sentence, each two adjacent sentences and
each window of a long sentence (units_of): a single harassing sentence inside a long,
ordinary support mail stands out instead of being averaged away.

The model (.npz, written by `veil rules train`) is two linear models over the same features,
stored as the columns of one weight row per word, stem and known word pair: column 0 is the
log-odds that a unit harasses at all (harassment against benign replies), the other columns
rank the harassment categories against each other. Text with no evidence either way therefore
reads as its prior, not as whichever category happens to have the largest bias. Matching a
message costs one tokenising scan, one dictionary lookup per word and a few array operations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.rules.reported import ORIGINAL_MESSAGE, blanked

try:
    from gateway.rules._fold import ascii_sentences, best_unit
except ImportError:  # built without a C compiler: _ascii_sentences and _best_unit do the same
    ascii_sentences = best_unit = None

BENIGN = "benign"  # the label of ordinary replies in training data
STEM = 6             # a word of more than STEM letters also counts by its first STEM letters
WINDOW_DEFAULT = 24  # at most this many words are judged together: about two sentences
HEAD, TAIL = 2_500, 1_200  # characters of a long text the model reads (see written_text)
_WORD = re.compile(r"[^\W_]+")
_ASCII_SEPARATORS = {c: " " for c in range(128) if not chr(c).isalnum()}
_KEEP_NUL = {**_ASCII_SEPARATORS, 0: 0}
_SENTENCE_END = re.compile(r"[.!?;]+(?: |$)|\n")
_FORMAT = 1
_CACHED_WORDS = 50_000  # words outside the vocabulary whose rows are remembered

Floats = npt.NDArray[np.float32]


class ModelError(Exception):
    """A model file that cannot be used; the message names the file and why."""


def word_key(word: str) -> str:
    """How a word counts: numbers by their length (a phone number is a shape, not a value)."""
    return f"#{len(word)}" if word.isdigit() else word


def stem_key(word: str) -> str | None:
    return "~" + word[:STEM] if len(word) > STEM and not word.isdigit() else None


def words_of(text: str) -> list[str]:
    """The words of normalised text, in order: runs of letters and digits."""
    if text.isascii():  # the same words as _WORD finds, several times faster
        return text.translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text)


def judged_sentences(lines: str, not_senders: list[tuple[int, int]]) -> list[list[str]]:
    """The sentences the model judges of normalised text with its line breaks, given the spans
    that are not the sender's words (reported.not_the_senders): the same for a message being
    judged and for a training example."""
    return sentences_of(written_text(blanked(lines, not_senders)))


def written_text(lines: str) -> str:
    """What the sender wrote, of normalised text with its line breaks, as the model judges it.

    Quoted lines ("> ...") and a forwarded or replied-to original below an "Original Message"
    line are left out: that is the agent's own earlier mail. Of a long text only the first
    HEAD and the last TAIL characters are kept: a reply states its business first and adds
    a "by the way" last, and a model reading every sentence of a pasted log or a long thread
    costs the most exactly where harassment is rarest. The rules still read everything."""
    if ">" in lines or "--" in lines:
        kept: list[str] = []
        for line in lines.split("\n"):
            start = line.lstrip()
            if start.startswith(">"):
                continue
            if ORIGINAL_MESSAGE.match(start):
                break
            kept.append(line)
        lines = "\n".join(kept)
    if len(lines) <= HEAD + TAIL:
        return lines
    head_end = lines.rfind(" ", 0, HEAD)  # cut between words
    tail_start = lines.find(" ", len(lines) - TAIL)
    return lines[:max(head_end, 0)] + "\n" + lines[max(tail_start, 0):]


def sentences_of(text: str) -> list[list[str]]:
    """The words of normalised text (only " " and "\n" as whitespace), sentence by sentence:
    a sentence ends at a run of . ! ? ; before a space, and at a line break (a greeting or a
    signature is not part of what follows). Sentences without words are dropped."""
    if not text.isascii():
        return [words for words in map(words_of, _SENTENCE_END.split(text)) if words]
    if ascii_sentences is not None:
        return ascii_sentences(text)  # _ascii_sentences compiled (_fold.c)
    return _ascii_sentences(text)


def _ascii_sentences(text: str) -> list[list[str]]:
    """sentences_of on ASCII text."""
    # words_of's fast path once for the whole text, with NUL marking where sentences end:
    # translate keeps it, and it cannot be part of a word. str.replace is many times faster
    # than the regular expression here.
    marked = text.replace("\0", "\1").replace("\n", "\0")
    for end in ".!?;":
        marked = marked.replace(end + " ", end + "\0")
    marked = marked.translate(_KEEP_NUL)
    return [words for words in map(str.split, marked.split("\0")) if words]


def units_of(lengths: Sequence[int], window: int) -> tuple[npt.NDArray[np.int64],
                                                          npt.NDArray[np.int64]]:
    """What the model judges, as [start, end) word ranges over sentences of these lengths:
    each sentence, each two adjacent sentences that fit in a window together, and every window
    of a sentence longer than a window. A harassing sentence is judged on its own, not diluted
    by the ordinary sentences around it."""
    size = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(size)
    starts = ends - size
    short = size <= window
    together = short[:-1] & short[1:] & (size[:-1] + size[1:] <= window)
    unit_starts = [starts[short], starts[:-1][together]]
    unit_ends = [ends[short], ends[1:][together]]
    for start, length in zip(starts[~short], size[~short]):
        offsets = np.arange(length - window + 1, dtype=np.int64)
        unit_starts.append(start + offsets)
        unit_ends.append(start + offsets + window)
    return np.concatenate(unit_starts), np.concatenate(unit_ends)


def features_of(words: Sequence[str]) -> Iterator[str]:
    """Every feature a run of words has: each word, each stem, each adjacent pair.

    Training counts exactly these; Classifier.unit_logits adds up their weights the same way."""
    keys = [word_key(w) for w in words]
    for word, key in zip(words, keys):
        yield key
        stem = stem_key(word)
        if stem:
            yield stem
    for first, second in zip(keys, keys[1:]):
        yield first + " " + second


@dataclass(frozen=True)
class Detection:
    label: str          # the most likely harassment category
    probability: float  # that the unit harasses at all
    first_word: int     # the unit judged, as indexes into the words of all sentences
    last_word: int


class Classifier:
    def __init__(self, labels: Sequence[str], bias: Floats, tokens: Sequence[str],
                 token_weights: Floats, stems: Sequence[str], stem_weights: Floats,
                 pair_keys: npt.NDArray[np.int64], pair_weights: Floats,
                 window: int = WINDOW_DEFAULT) -> None:
        """`labels` are the harassment categories; every weight row has one column more, the
        first, for harassment against benign."""
        if not labels or BENIGN in labels:
            raise ModelError(f"the labels {list(labels)} must be harassment categories")
        self.labels = tuple(labels)
        self.bias = bias.astype(np.float32)
        self.window = window
        self.tokens = tuple(tokens)
        self.stems = tuple(stems)
        self.token_weights = token_weights.astype(np.float32)
        self.stem_weights = stem_weights.astype(np.float32)
        order = np.argsort(pair_keys)
        self.pair_keys = pair_keys[order]
        self.pair_weights = pair_weights.astype(np.float32)[order]
        self._pair_harassment = np.ascontiguousarray(self.pair_weights[:, 0])
        # One row per word a text can hold: the known words (own weight plus their stem's),
        # then words known only by their stem, then a row of zeros for everything else.
        stem_index = {stem: i for i, stem in enumerate(stems)}
        self._stem_index = stem_index
        known = self.token_weights.copy()
        for i, token in enumerate(tokens):
            stem = stem_key(token)
            if stem is not None and stem in stem_index:
                known[i] += self.stem_weights[stem_index[stem]]
        width = len(labels) + 1
        self._rows = np.vstack([known, self.stem_weights, np.zeros((1, width), np.float32)])
        self._row_harassment = np.ascontiguousarray(self._rows[:, 0])
        self._nothing = len(self._rows) - 1
        self._known_codes = {token: i for i, token in enumerate(tokens)}
        self._codes = dict(self._known_codes)

    def _code(self, word: str) -> int:
        """The row of a word not seen before: its number shape, its stem, or nothing."""
        code = self._known_codes.get(word_key(word))
        if code is None:
            stem = stem_key(word)
            code = len(self.tokens) + self._stem_index[stem] \
                if stem is not None and stem in self._stem_index else self._nothing
        if len(self._codes) > len(self._known_codes) + _CACHED_WORDS:
            self._codes = dict(self._known_codes)  # bounded: hostile text can be all new words
        self._codes[word] = code
        return code

    def codes(self, words: Sequence[str]) -> npt.NDArray[np.int64]:
        """The weight row of each word."""
        codes = list(map(self._codes.get, words))
        try:
            return np.fromiter(codes, dtype=np.int64, count=len(codes))
        except TypeError:  # a word not seen before: None
            code = self._code
            return np.fromiter((code(w) if c is None else c for w, c in zip(words, codes)),
                               dtype=np.int64, count=len(codes))

    def _pair_slots(self, codes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64],
                                                                npt.NDArray[np.int64]]:
        """Positions (of the second word) and weight slots of the known word pairs."""
        if len(codes) < 2 or not len(self.pair_keys):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        count = len(self.tokens)
        first, second = codes[:-1], codes[1:]
        both = np.flatnonzero((first < count) & (second < count))
        keys = first[both] * count + second[both]
        order = np.argsort(keys)  # searching sorted keys is several times faster
        slots = np.empty_like(keys)
        slots[order] = np.searchsorted(self.pair_keys, keys[order])
        np.minimum(slots, len(self.pair_keys) - 1, out=slots)
        hit = self.pair_keys[slots] == keys
        return both[hit] + 1, slots[hit]

    def unit_logits(self, words: Sequence[str], starts: npt.NDArray[np.int64],
                    ends: npt.NDArray[np.int64]) -> Floats:
        """Logits of the word ranges [starts, ends): column 0 harassment against benign, then
        one per category."""
        codes = self.codes(words)
        positions, slots = self._pair_slots(codes)
        pairs = np.zeros((len(codes), len(self.labels) + 1), dtype=np.float32)
        pairs[positions] = self.pair_weights[slots]  # one pair ends at each position
        return self._sums(self._rows[codes], pairs, starts, ends) + self.bias

    @staticmethod
    def _sums(per_word: Floats, pairs: Floats, starts: npt.NDArray[np.int64],
              ends: npt.NDArray[np.int64]) -> Floats:
        """The weights of each range's words and of the pairs that lie wholly inside it."""
        zero = np.zeros((1, *per_word.shape[1:]), dtype=np.float32)
        words = np.concatenate([zero, np.cumsum(per_word, axis=0, dtype=np.float32)])
        inside = np.concatenate([zero, np.cumsum(pairs, axis=0, dtype=np.float32)])
        # Range [a, b) holds words a .. b-1 and the pairs ending at a+1 .. b-1.
        return (words[ends] - words[starts]) + (inside[ends] - inside[starts + 1])

    def detect(self, text: str) -> Detection:
        """The most harassing unit of what was written in normalised text (Normalised.lines;
        see written_text and units_of)."""
        return self.detect_sentences(sentences_of(written_text(text)))

    def detect_sentences(self, sentences: Sequence[Sequence[str]]) -> Detection:
        """The most harassing unit of these sentences (at least one word in all).

        Only the harassment column is summed for every unit; the categories are ranked for the
        best unit alone."""
        words = list(chain.from_iterable(sentences))
        if not words:
            return Detection(self.labels[int(np.argmax(self.bias[1:]))],
                             1.0 / (1.0 + float(np.exp(-self.bias[0]))), 0, -1)
        lengths = [len(s) for s in sentences if s]
        codes = self.codes(words)
        if best_unit is not None:  # _best_unit compiled (_fold.c), several times cheaper
            logit, start, end = best_unit(codes, np.array(lengths, dtype=np.int64),
                                          self.window, self._row_harassment, self.pair_keys,
                                          self._pair_harassment, len(self.tokens))
        else:
            logit, start, end = self._best_unit(codes, lengths)
        probability = 1.0 / (1.0 + float(np.exp(-(np.float32(logit) + self.bias[0]))))
        first, last = start, end - 1
        # The categories of that unit alone: its words and the pairs that lie inside it.
        unit = codes[first:last + 1]
        positions, slots = self._pair_slots(unit)
        ranks = self._rows[unit, 1:].sum(axis=0) + \
            self.pair_weights[slots, 1:].sum(axis=0) + self.bias[1:]
        return Detection(self.labels[int(np.argmax(ranks))], probability, first, last)

    def _best_unit(self, codes: npt.NDArray[np.int64],
                   lengths: Sequence[int]) -> tuple[float, int, int]:
        """(logit without the bias, start, end) of the first unit of the largest weight."""
        starts, ends = units_of(lengths, self.window)
        positions, slots = self._pair_slots(codes)
        pairs = np.zeros(len(codes), dtype=np.float32)
        pairs[positions] = self._pair_harassment[slots]
        logits = self._sums(self._row_harassment[codes], pairs, starts, ends)
        best = int(np.argmax(logits))
        return float(logits[best]), int(starts[best]), int(ends[best])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            np.savez_compressed(
                file, format=np.array(_FORMAT), window=np.array(self.window),
                labels=np.array("\n".join(self.labels)), bias=self.bias,
                tokens=np.array("\n".join(self.tokens)),
                token_weights=self.token_weights.astype(np.float16),
                stems=np.array("\n".join(self.stems)),
                stem_weights=self.stem_weights.astype(np.float16),
                pair_keys=self.pair_keys, pair_weights=self.pair_weights.astype(np.float16))


def _lines(array: npt.NDArray[np.str_]) -> list[str]:
    text = str(array)
    return text.split("\n") if text else []


def load_classifier(path: Path) -> Classifier:
    retrain = "retrain it with `veil rules train`"
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != _FORMAT:
                raise ModelError(f"{path}: model format {int(data['format'])}, expected "
                                 f"{_FORMAT}; {retrain}")
            tokens, stems = _lines(data["tokens"]), _lines(data["stems"])
            labels = _lines(data["labels"])
            arrays = {name: data[name] for name in ("bias", "token_weights", "stem_weights",
                                                    "pair_keys", "pair_weights")}
            window = int(data["window"])
    except OSError as error:
        raise ModelError(f"{path}: cannot read the model: {error.strerror or error}")
    except (KeyError, ValueError) as error:
        raise ModelError(f"{path}: not a classifier model ({error}); {retrain}")
    width = len(labels) + 1
    shapes = {"bias": (width,), "token_weights": (len(tokens), width),
              "stem_weights": (len(stems), width),
              "pair_keys": (len(arrays["pair_keys"]),),
              "pair_weights": (len(arrays["pair_keys"]), width)}
    wrong = [name for name, shape in shapes.items() if arrays[name].shape != shape]
    if wrong or window < 1:
        raise ModelError(f"{path}: {', '.join(wrong) or 'window'} do not fit the vocabulary "
                         f"and labels; {retrain}")
    return Classifier(labels, arrays["bias"], tokens, arrays["token_weights"], stems,
                      arrays["stem_weights"], arrays["pair_keys"], arrays["pair_weights"],
                      window)
