"""Training the harassment classifier from labelled replies (`veil rules train`).

Examples come from JSON Lines files ({"label": ..., "lang": ..., "text": ...}, label "benign"
or a harassment category) and from folders laid out like `veil rules eval` expects
(DIR/harass/<category>/*.eml, DIR/benign/*.eml). Training needs scikit-learn (the `train`
extra); matching with the trained model needs only numpy.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.rules.classifier import (BENIGN, WINDOW_DEFAULT, Classifier, features_of,
                                      judged_sentences, units_of, word_key)
from gateway.rules.engine import distinct_segments
from gateway.rules.normalise import normalise
from gateway.rules.reported import not_the_senders
from gateway.rules.text import message_text

_LANGUAGE_SAMPLE = 300  # instances of a language needed to find its common words
CATEGORIES = ("sexual", "looks", "romantic", "contact-request", "stalking", "threat",
              "gendered-insult")


class TrainingError(Exception):
    """Training data that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    label: str
    text: str
    source: str
    lang: str = ""  # as the data says; "" when it does not


def examples_from_jsonl(path: Path) -> list[Example]:
    examples: list[Example] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise TrainingError(f"{where}: not JSON: {error}")
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or \
                item.get("label") not in (BENIGN, *CATEGORIES):
            raise TrainingError(f"{where}: needs a text and a label, one of "
                                f"{', '.join((BENIGN, *CATEGORIES))}")
        examples.append(Example(item["label"], item["text"], where, str(item.get("lang", ""))))
    return examples


def examples_from_mail(folder: Path) -> list[Example]:
    """Labelled .eml files: the text a person sees (Subject and every text part)."""
    examples: list[Example] = []
    for path in sorted((folder / "harass").rglob("*.eml")):
        category = path.relative_to(folder / "harass").parts[0]
        if category not in CATEGORIES:
            raise TrainingError(f"{path}: {category!r} is not a category "
                                f"({', '.join(CATEGORIES)})")
        examples.append(Example(category, _mail_text(path), str(path)))
    for path in sorted((folder / "benign").rglob("*.eml")):
        examples.append(Example(BENIGN, _mail_text(path), str(path)))
    return examples


def _mail_text(path: Path) -> str:
    content = message_text(path.read_bytes())
    segments = distinct_segments((s.where, s.text) for s in content.segments)
    return "\n".join(normalised.original for where, normalised in segments
                     if not where.startswith("header"))


def load_examples(sources: Iterable[Path]) -> list[Example]:
    examples: list[Example] = []
    for source in sources:
        if source.is_dir() and (source / "harass").is_dir():
            examples.extend(examples_from_mail(source))
        elif source.is_dir():
            for file in sorted(source.rglob("*.jsonl")):
                examples.extend(examples_from_jsonl(file))
        elif source.is_file():
            examples.extend(examples_from_jsonl(source))
        else:
            raise TrainingError(f"{source}: no such file or folder")
    return examples


def train(examples: Sequence[Example], strength: float = 4.0, min_count: int = 2,
          benign_weight: float = 3.0, common: float = 0.05,
          window: int = WINDOW_DEFAULT, shuffled_benign: bool = True) -> Classifier:
    """Two logistic regressions over word, stem and word-pair counts (see classifier.py).

    The model judges units (sentences, pairs of sentences, windows of long ones), so it learns
    from units too: every unit of a benign reply is a benign instance (short ordinary text
    must not look harassing merely for being short), and a harassing reply is first learnt
    whole, then replaced by its most harassing unit under that first model, since the rest of
    such a reply is usually ordinary support talk. `strength` is the inverse of the L2 penalty;
    features seen in fewer than `min_count` instances are dropped (they would only memorise);
    benign instances weigh `benign_weight` times as much as harassing ones in all, so text
    with little evidence leans benign; words in more than `common` of a language's instances
    count only in pairs (_common_words); with `shuffled_benign`, every benign reply also
    counts once with its words in random order (_shuffled)."""
    labels = {e.label for e in examples}
    if BENIGN not in labels or len(labels) < 2:
        raise TrainingError("training needs benign examples and at least one category")
    benign: list[list[str]] = []
    harassing: list[tuple[str, list[list[str]]]] = []
    by_language: dict[str, list[list[str]]] = {}
    for example in examples:
        sentences = _sentences(example)
        if example.label == BENIGN:
            units = _units(sentences, window)
            benign.extend(units)
        elif sentences:
            harassing.append((example.label, sentences))
            units = [[w for s in sentences for w in s]]
        else:
            units = []
        by_language.setdefault(example.lang, []).extend(units)
    dropped = _common_words(by_language, common)
    salad = [unit for example in (_shuffled(examples) if shuffled_benign else [])
             for unit in _units(_sentences(example), window)]
    whole = [(label, [w for s in sentences for w in s]) for label, sentences in harassing]
    first = _fit(benign, salad, whole, strength, min_count, benign_weight, dropped, window)
    focused = [(label, _best_unit(first, sentences)) for label, sentences in harassing]
    return _fit(benign, salad, focused, strength, min_count, benign_weight, dropped, window)


def _sentences(example: Example) -> list[list[str]]:
    """The sentences of an example as the model judges a message's: what the sender wrote,
    without quoted lines and without someone else's words quoted (engine._classify)."""
    normalised = normalise(example.text)
    return judged_sentences(normalised.lines, not_the_senders(normalised.text, normalised.lines))


def _shuffled(examples: Sequence[Example]) -> list[Example]:
    """Benign replies with their words shuffled, as more benign instances (they choose no
    features: the vocabulary is what real replies hold). Without them the model learns that a
    long run of ordinary words ("let", "me", "know", "just") leans harassing, because harassing
    units are longer than the average benign one: 13% of random support-word salad was held,
    under 1% with them, and the labelled sets moved by a message either way."""
    rng = random.Random(0)  # the same model from the same data
    shuffled: list[Example] = []
    for example in examples:
        words = example.text.split()
        if example.label == BENIGN and len(words) >= 6:
            rng.shuffle(words)
            shuffled.append(Example(BENIGN, " ".join(words), example.source + " (shuffled)",
                                    example.lang))
    return shuffled


def _common_words(by_language: dict[str, list[list[str]]], common: float) -> set[str]:
    """Words found in more than `common` of the instances of a language ("you", "wir",
    "doch"): both sides use them, and as single words they would only weigh how much of a
    text is function words. Their pairs ("your legs") still count."""
    dropped: set[str] = set()
    for instances in by_language.values():
        if len(instances) < _LANGUAGE_SAMPLE:
            continue  # too few to tell a function word from a topic
        seen = Counter(word_key(w) for words in instances for w in set(words))
        dropped.update(w for w, n in seen.items() if n > common * len(instances))
    return dropped


def _units(sentences: list[list[str]], window: int) -> list[list[str]]:
    """Every unit the model will judge in this text (classifier.units_of)."""
    words = [word for sentence in sentences for word in sentence]
    starts, ends = units_of([len(s) for s in sentences], window)
    return [words[start:end] for start, end in zip(starts, ends)]


def _best_unit(model: Classifier, sentences: list[list[str]]) -> list[str]:
    words = [word for sentence in sentences for word in sentence]
    found = model.detect_sentences(sentences)
    return words[found.first_word:found.last_word + 1]


def _fit(benign: list[list[str]], salad: list[list[str]],
         harassing: list[tuple[str, list[str]]], strength: float, min_count: int,
         benign_weight: float, dropped: set[str], window: int) -> Classifier:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    instances = [*benign, *(words for _, words in harassing), *salad]
    counted = [Counter(features_of(words)) for words in instances]
    real = counted[:len(counted) - len(salad)]
    seen = Counter(feature for counts in real for feature in counts)
    vocabulary = sorted(f for f, n in seen.items() if n >= min_count and f not in dropped)
    column = {feature: i for i, feature in enumerate(vocabulary)}
    rows, columns, values = [], [], []
    for row, counts in enumerate(counted):
        for feature, count in counts.items():
            if feature in column:
                rows.append(row)
                columns.append(column[feature])
                values.append(float(count))
    matrix = csr_matrix((values, (rows, columns)), shape=(len(instances), len(vocabulary)),
                        dtype=np.float64)
    # Harassment against benign decides; each side weighs the same in all, times
    # `benign_weight` for benign.
    is_harassing = [False] * len(benign) + [True] * len(harassing) + [False] * len(salad)
    share = len(harassing) / max(len(benign) + len(salad), 1)
    decision = LogisticRegression(C=strength, max_iter=3000,
                                  class_weight={False: share * benign_weight, True: 1.0})
    decision.fit(matrix, is_harassing)
    targets = [label for label, _ in harassing]
    categories = sorted(set(targets))
    if len(categories) == 1:  # nothing to rank
        ranks, rank_bias = np.zeros((len(vocabulary), 1)), np.zeros(1)
        order = [0]
    else:
        ranking = LogisticRegression(C=strength, max_iter=3000, class_weight="balanced")
        ranking.fit(matrix[len(benign):len(benign) + len(harassing)], targets)
        ranks = ranking.coef_.T
        rank_bias = ranking.intercept_
        if len(ranking.classes_) == 2:  # scikit-learn keeps one column for two labels
            ranks = np.hstack([-ranks / 2, ranks / 2])
            rank_bias = np.array([-rank_bias[0] / 2, rank_bias[0] / 2])
        order = [list(ranking.classes_).index(c) for c in categories]
    coefficients = np.hstack([decision.coef_.T, ranks[:, order]]).astype(np.float32)
    bias = np.concatenate([decision.intercept_, rank_bias[order]]).astype(np.float32)
    return _classifier(categories, bias, vocabulary, coefficients, window)


def _classifier(labels: list[str], bias: np.ndarray, vocabulary: list[str],
                coefficients: np.ndarray, window: int) -> Classifier:
    pairs = [f for f in vocabulary if " " in f]
    stems = [f for f in vocabulary if f.startswith("~")]
    tokens = sorted({f for f in vocabulary if " " not in f and not f.startswith("~")}
                    | {word for pair in pairs for word in pair.split(" ")})
    token_id = {token: i for i, token in enumerate(tokens)}
    column = {feature: i for i, feature in enumerate(vocabulary)}
    width = len(labels) + 1
    token_weights = np.zeros((len(tokens), width), dtype=np.float32)
    for token, i in token_id.items():
        if token in column:
            token_weights[i] = coefficients[column[token]]
    stem_weights = np.array([coefficients[column[s]] for s in stems],
                            dtype=np.float32).reshape(len(stems), width)
    pair_keys = np.array([token_id[a] * len(tokens) + token_id[b]
                          for a, b in (p.split(" ") for p in pairs)], dtype=np.int64)
    pair_weights = np.array([coefficients[column[p]] for p in pairs],
                            dtype=np.float32).reshape(len(pairs), width)
    return Classifier(labels, bias, tokens, token_weights, [s for s in stems], stem_weights,
                      pair_keys, pair_weights, window)
