"""The rules engine: load rule files, match every rule in one pass, score, explain.

Rules are data (rules/*.toml). Every literal term, proximity word and pattern anchor of every
rule goes into one Aho-Corasick automaton over the normalised text: one pass per message,
whatever the number of rules. Regular-expression patterns run only on short windows around
their anchors, with a timeout. A `[[classifier]]` table is a trained model used as one more
rule (gateway/rules/classifier.py): it matches when a unit of what the sender wrote harasses
with at least its threshold probability. A rule counts once per message; the verdict is the
sum of the scores of the rules that matched against the quarantine threshold.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick_rs
import regex

from gateway.rules.classifier import Classifier, ModelError, judged_sentences, load_classifier
from gateway.rules.normalise import Normalised, normalise, normalise_term
from gateway.rules.reported import inside, not_the_senders
from gateway.rules.text import message_text

WINDOW = 80            # characters either side of an anchor that a pattern or exception sees
MAX_WORD = 30          # characters per word when bounding a proximity search
PATTERN_TIMEOUT = 0.05  # seconds per pattern search: a safety net, patterns are checked at load
REPEAT_LOOKBACK = 4    # body segments before one that it may repeat (see distinct_segments)
SEGMENT_KINDS = ("subject", "body", "headers")
# Text-speak spellings of words of the second person: a term written "i know where you live"
# also matches "i know where u live" and "know where ur flat is".
TEXTSPEAK = {"you": ("u",), "your": ("ur",), "you're": ("youre", "ur"),
             "yours": ("urs",), "yourself": ("urself",), "you'll": ("youll", "ull"),
             "you've": ("youve",)}
# The same words where a pattern spells them out: after a word edge (or \b, \s, \W) and
# before one, not inside a longer word; an apostrophe is a character or \x27 in patterns.
_TEXTSPEAK_WORD = regex.compile(r"(?:(?<=\\[bBsSwW])|(?<![\w\\]))(you(?:\x27|\\x27)(?:re|ll|ve)"
                                r"|yourself|yours|your|you)(?!\w)")


def _textspeak_group(match: regex.Match[str]) -> str:
    word = match.group(1).replace("\\x27", "'")
    return "(?:" + "|".join(regex.escape(w, literal_spaces=True)
                            for w in (word, *TEXTSPEAK[word])) + ")"


# A group that contains a quantifier and is itself quantified can backtrack exponentially.
_NESTED_QUANTIFIER = regex.compile(r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,\d*\})(?:[^()\\]|\\.)*\)"
                                   r"\s*(?:[+*]|\{\d*,\d*\})")


class RuleError(Exception):
    """A rule file that cannot be loaded; the message names the file, the rule and why."""


@dataclass(frozen=True)
class Match:
    rule: str
    category: str
    score: float
    excerpt: str
    where: str


@dataclass(frozen=True)
class Verdict:
    action: str  # "quarantine" | "deliver"
    score: float
    matches: tuple[Match, ...]
    reason: str


@dataclass(frozen=True)
class Proximity:
    first: tuple[str, ...]
    second: tuple[str, ...]
    within: int


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    description: str
    score: float
    terms: tuple[str, ...] = ()
    near: tuple[Proximity, ...] = ()
    anchors: tuple[str, ...] = ()
    patterns: tuple[regex.Pattern[str], ...] = ()
    unless: tuple[regex.Pattern[str], ...] = ()
    applies_to: tuple[str, ...] = ("subject", "body")
    match_examples: tuple[str, ...] = ()
    no_match_examples: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class ExceptionSet:
    """Exceptions several rules share (`unless_sets` names them): a hit of such a rule that one
    of the patterns overlaps is not a hit, as with the rule's own `unless`."""
    id: str
    description: str
    patterns: tuple[regex.Pattern[str], ...]
    match_examples: tuple[str, ...] = ()     # texts in which a pattern must find something
    no_match_examples: tuple[str, ...] = ()  # and texts in which none may
    source: str = ""


@dataclass(frozen=True)
class ClassifierRule:
    """A trained model as a rule: it matches when a unit of text (a sentence, two, a window)
    harasses with at least `threshold` probability, in the category it finds most likely."""
    id: str
    description: str
    score: float
    threshold: float
    model: Classifier
    applies_to: tuple[str, ...] = ("subject", "body")
    match_examples: tuple[str, ...] = ()
    no_match_examples: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class MetaRule:
    id: str
    category: str
    description: str
    score: float
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    categories_at_least: int = 0
    source: str = ""


_RULE_KEYS = {"id", "category", "description", "score", "terms", "near", "anchors", "patterns",
              "unless", "unless_sets", "applies_to", "match", "no_match"}
_EXCEPTION_KEYS = {"id", "description", "patterns", "match", "no_match"}
_META_KEYS = {"id", "category", "description", "score", "all_of", "any_of",
              "categories_at_least"}
_CLASSIFIER_KEYS = {"id", "description", "score", "threshold", "model", "applies_to", "match",
                    "no_match"}


def _compile(pattern: str, where: str) -> regex.Pattern[str]:
    if _NESTED_QUANTIFIER.search(pattern):
        raise RuleError(f"{where}: pattern {pattern!r} nests quantifiers and can backtrack "
                        "catastrophically; rewrite it without a quantified group of quantifiers")
    try:
        return regex.compile(_TEXTSPEAK_WORD.sub(_textspeak_group, pattern),
                             regex.V1 | regex.IGNORECASE)
    except regex.error as error:
        raise RuleError(f"{where}: pattern {pattern!r} does not compile: {error}")


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RuleError(f"{where}: {key} must be a list of non-empty strings")
    return tuple(value)


def _applies_to(table: dict[str, Any], where: str) -> tuple[str, ...]:
    applies_to = _strings(table, "applies_to", where) or ("subject", "body")
    for kind in applies_to:
        if kind not in SEGMENT_KINDS:
            raise RuleError(f"{where}: applies_to takes {', '.join(SEGMENT_KINDS)}")
    return applies_to


def textspeak_spellings(term: str) -> list[str]:
    """A normalised term and its text-speak spellings (TEXTSPEAK), the term first."""
    spellings = [""]
    for word in term.split(" "):
        choices = (word, *TEXTSPEAK.get(word, ()))
        spellings = [f"{done} {choice}" if done else choice
                     for done in spellings for choice in choices][:16]
    return spellings


def _terms(words: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(spelling for word in words
                               for spelling in textspeak_spellings(normalise_term(word))))


def _rule(table: dict[str, Any], where: str, shared: dict[str, ExceptionSet]) -> Rule:
    unknown = set(table) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "category", "description", "score"):
        if key not in table:
            raise RuleError(f"{where}: missing {key}")
    if not isinstance(table["score"], (int, float)) or isinstance(table["score"], bool):
        raise RuleError(f"{where}: score must be a number")
    near: list[Proximity] = []
    for item in table.get("near", []):
        if not isinstance(item, dict) or set(item) - {"a", "b", "within"} or "a" not in item \
                or "b" not in item:
            raise RuleError(f"{where}: near entries are {{ a = [...], b = [...], within = N }}")
        within = item.get("within", 3)
        if not isinstance(within, int) or not 0 <= within <= 20:
            raise RuleError(f"{where}: near.within must be a whole number from 0 to 20")
        near.append(Proximity(_terms(_strings(item, "a", where)),
                              _terms(_strings(item, "b", where)), within))
    patterns = tuple(_compile(p, where) for p in _strings(table, "patterns", where))
    anchors = tuple(normalise_term(a) for a in _strings(table, "anchors", where))
    if patterns and not anchors:
        raise RuleError(f"{where}: patterns need anchors (literal words that must be present), "
                        "so they run on short windows and not on the whole message")
    terms = _terms(_strings(table, "terms", where))
    if not (terms or near or patterns):
        raise RuleError(f"{where}: give terms, near or patterns")
    applies_to = _applies_to(table, where)
    unless = [_compile(u, where) for u in _strings(table, "unless", where)]
    for name in _strings(table, "unless_sets", where):
        if name not in shared:
            raise RuleError(f"{where}: unless_sets names unknown exception {name!r}")
        unless.extend(shared[name].patterns)
    return Rule(str(table["id"]), str(table["category"]), str(table["description"]),
                float(table["score"]), terms, tuple(near), anchors, patterns, tuple(unless),
                applies_to, _strings(table, "match", where), _strings(table, "no_match", where),
                where)


def _exception(table: dict[str, Any], where: str) -> ExceptionSet:
    unknown = set(table) - _EXCEPTION_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "description", "patterns"):
        if key not in table:
            raise RuleError(f"{where}: missing {key}")
    return ExceptionSet(str(table["id"]), str(table["description"]),
                        tuple(_compile(p, where) for p in _strings(table, "patterns", where)),
                        _strings(table, "match", where), _strings(table, "no_match", where),
                        where)


def _meta(table: dict[str, Any], where: str) -> MetaRule:
    unknown = set(table) - _META_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "category", "description", "score"):
        if key not in table:
            raise RuleError(f"{where}: missing {key}")
    meta = MetaRule(str(table["id"]), str(table["category"]), str(table["description"]),
                    float(table["score"]), _strings(table, "all_of", where),
                    _strings(table, "any_of", where), int(table.get("categories_at_least", 0)),
                    where)
    if not (meta.all_of or meta.any_of or meta.categories_at_least):
        raise RuleError(f"{where}: a meta rule needs all_of, any_of or categories_at_least")
    return meta


def _classifier(table: dict[str, Any], where: str, folder: Path) -> ClassifierRule:
    unknown = set(table) - _CLASSIFIER_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "description", "score", "threshold", "model"):
        if key not in table:
            raise RuleError(f"{where}: missing {key}")
    threshold = table["threshold"]
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or \
            not 0 < threshold < 1:
        raise RuleError(f"{where}: threshold is a probability between 0 and 1, such as 0.5")
    if not isinstance(table["score"], (int, float)) or isinstance(table["score"], bool):
        raise RuleError(f"{where}: score must be a number")
    if not isinstance(table["model"], str):
        raise RuleError(f"{where}: model is the path of a .npz file, relative to the rule file")
    try:
        model = load_classifier(folder / table["model"])
    except ModelError as error:
        raise RuleError(f"{where}: {error}")
    applies_to = _applies_to(table, where)
    return ClassifierRule(str(table["id"]), str(table["description"]), float(table["score"]),
                          float(threshold), model, applies_to, _strings(table, "match", where),
                          _strings(table, "no_match", where), where)


def _files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.toml")))
        elif path.is_file():
            files.append(path)
        else:
            raise RuleError(f"{path}: no such rule file or folder")
    return files


def load_ruleset(paths: Sequence[Path]) -> RuleSet:
    rules: list[Rule] = []
    metas: list[MetaRule] = []
    classifiers: list[ClassifierRule] = []
    files: list[tuple[Path, dict[str, Any]]] = []
    for file in _files(paths):
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise RuleError(f"{file}: not valid TOML: {error}")
        unknown = set(data) - {"rule", "meta", "classifier", "exception"}
        if unknown:
            raise RuleError(f"{file}: unknown table(s) {', '.join(sorted(unknown))}")
        files.append((file, data))
    # Shared exceptions first: a rule may name one from any file.
    shared: dict[str, ExceptionSet] = {}
    for file, data in files:
        for index, table in enumerate(data.get("exception", [])):
            exception = _exception(table,
                                   f"{file}: exception {table.get('id', f'#{index + 1}')}")
            if exception.id in shared:
                raise RuleError(f"{exception.source}: duplicate exception id {exception.id!r}")
            shared[exception.id] = exception
    for file, data in files:
        for index, table in enumerate(data.get("rule", [])):
            rules.append(_rule(table, f"{file}: rule {table.get('id', f'#{index + 1}')}",
                               shared))
        for index, table in enumerate(data.get("meta", [])):
            metas.append(_meta(table, f"{file}: meta {table.get('id', f'#{index + 1}')}"))
        for index, table in enumerate(data.get("classifier", [])):
            classifiers.append(_classifier(
                table, f"{file}: classifier {table.get('id', f'#{index + 1}')}", file.parent))
    seen: set[str] = set()
    items: list[Rule | MetaRule | ClassifierRule] = [*rules, *metas, *classifiers]
    for item in items:
        if item.id in seen:
            raise RuleError(f"{item.source}: duplicate rule id {item.id!r}")
        seen.add(item.id)
    for meta in metas:
        for reference in (*meta.all_of, *meta.any_of):
            if reference not in seen:
                raise RuleError(f"{meta.source}: refers to unknown rule {reference!r}")
    return RuleSet(tuple(rules), tuple(metas), tuple(classifiers), tuple(shared.values()))


# Entries: (term length, kind, rule index, slot) with kind "term", "anchor", "a", "b"; the
# automaton's key number indexes _key_entries: (word length, entries).
_Entry = tuple[int, str, int, int]


class RuleSet:
    def __init__(self, rules: tuple[Rule, ...], metas: tuple[MetaRule, ...],
                 classifiers: tuple[ClassifierRule, ...] = (),
                 exceptions: tuple[ExceptionSet, ...] = ()) -> None:
        self.rules = rules
        self.metas = metas
        self.classifiers = classifiers
        self.exceptions = exceptions
        entries: dict[str, list[_Entry]] = {}
        for index, rule in enumerate(rules):
            for term in rule.terms:
                entries.setdefault(term, []).append((len(term), "term", index, 0))
            for anchor in rule.anchors:
                entries.setdefault(anchor, []).append((len(anchor), "anchor", index, 0))
            for slot, proximity in enumerate(rule.near):
                for word in proximity.first:
                    entries.setdefault(word, []).append((len(word), "a", index, slot))
                for word in proximity.second:
                    entries.setdefault(word, []).append((len(word), "b", index, slot))
        # Keys are looked for in _on_word_edges(text), padded the same way: a key then only
        # matches where it stands on word edges, and the short ones ("u", "ur") are not
        # found inside every other word only to be thrown away.
        keyed: dict[str, tuple[int, list[_Entry]]] = {}
        for key, values in entries.items():
            stem = key.endswith("*")
            word = key.rstrip("*")
            if word:
                padded = _on_word_edges(word)[:-1] if stem else _on_word_edges(word)
                keyed.setdefault(padded, (len(word), []))[1].extend(values)
        # One automaton for every key: ahocorasick_rs' DFA finds the ~90 hits in a 10 KB
        # message in about half the time of pyahocorasick's trie walk.
        self._key_entries = [(length, tuple(values)) for length, values in keyed.values()]
        self.automaton = ahocorasick_rs.AhoCorasick(
            list(keyed), implementation=ahocorasick_rs.Implementation.DFA) if keyed else None

    def __len__(self) -> int:
        return len(self.rules) + len(self.metas) + len(self.classifiers)

    def match_text(self, normalised: Normalised, where: str,
                   reported: list[tuple[int, int]] | None = None) -> dict[int, Match]:
        """Rules matched in one normalised text, by rule index, with the first excerpt; no hit
        counts inside `reported` (not the sender's words: not_the_senders, found if not given)."""
        text = normalised.text
        found: dict[int, Match] = {}
        if not text or self.automaton is None:
            return found
        kind_of_segment = _segment_kind(where)
        if reported is None:
            reported = not_the_senders(text, normalised.lines)
        proximity_hits: dict[tuple[int, int, str], list[int]] = {}
        anchors: dict[int, list[int]] = {}
        key_entries = self._key_entries
        for key, start, _ in self.automaton.find_matches_as_indexes(_on_word_edges(text),
                                                                    overlapping=True):
            # The key's leading space stands where the padded text's leading space put the
            # character before the word: `start` is the word's offset in `text`.
            length, values = key_entries[key]
            end = start + length
            for _, kind, index, slot in values:
                rule = self.rules[index]
                if kind_of_segment not in rule.applies_to or index in found:
                    continue
                if kind == "term":
                    if not self._excepted(rule, text, start, end) and \
                            not inside(reported, start, end):
                        found[index] = self._match(rule, normalised, start, end, where)
                elif kind == "anchor":
                    anchors.setdefault(index, []).append(start)
                else:
                    proximity_hits.setdefault((index, slot, kind), []).append(start)
        for index, starts in anchors.items():
            if index in found:
                continue
            rule = self.rules[index]
            hit = self._pattern_hit(rule, text, starts, reported)
            if hit is not None:
                found[index] = self._match(rule, normalised, hit[0], hit[1], where)
        if proximity_hits:
            self._proximity(normalised, where, proximity_hits, found, reported)
        return found

    def _proximity(self, normalised: Normalised, where: str,
                   hits: dict[tuple[int, int, str], list[int]], found: dict[int, Match],
                   reported: list[tuple[int, int]]) -> None:
        text = normalised.text
        for (index, slot, kind), starts in hits.items():
            if kind != "a" or index in found:
                continue
            seconds = hits.get((index, slot, "b"))
            if not seconds:
                continue
            rule = self.rules[index]
            within = rule.near[slot].within
            reach = (within + 2) * MAX_WORD
            # Only the second words within reach of each first word are looked at: a hostile
            # text of thousands of both, out of reach of each other, stays linear.
            seconds = sorted(seconds)
            for a in starts:
                low, high = bisect_left(seconds, a - reach), bisect_right(seconds, a + reach)
                b = next((b for b in seconds[low:high]
                          if b != a and _words_between(text, a, b) <= within + 1), None)
                if b is not None:
                    start, end = min(a, b), max(a, b) + 1
                    end = _WORD_REST.match(text, end).end()
                    if not self._excepted(rule, text, start, end) and \
                            not inside(reported, start, end):
                        found[index] = self._match(rule, normalised, start, end, where)
                        break

    @staticmethod
    def _pattern_hit(rule: Rule, text: str, starts: list[int],
                     reported: list[tuple[int, int]]) -> tuple[int, int] | None:
        for anchor in starts[:20]:
            low, high = max(0, anchor - WINDOW), min(len(text), anchor + WINDOW)
            for pattern in rule.patterns:
                try:
                    match = pattern.search(text, low, high, timeout=PATTERN_TIMEOUT)
                except TimeoutError:
                    continue
                if match and not RuleSet._excepted(rule, text, match.start(), match.end()) \
                        and not inside(reported, match.start(), match.end()):
                    return match.start(), match.end()
        return None

    @staticmethod
    def _excepted(rule: Rule, text: str, start: int, end: int) -> bool:
        if not rule.unless:
            return False
        low, high = max(0, start - WINDOW), min(len(text), end + WINDOW)
        window = text[low:high]
        for pattern in rule.unless:
            try:
                for match in pattern.finditer(window, timeout=PATTERN_TIMEOUT):
                    # An exception applies when it overlaps the hit, not somewhere beside it:
                    # write it so that it cannot also overlap a real hit.
                    if match.start() + low < end and match.end() + low > start:
                        return True
            except TimeoutError:
                continue
        return False

    @staticmethod
    def _match(rule: Rule, normalised: Normalised, start: int, end: int, where: str) -> Match:
        return Match(rule.id, rule.category, rule.score, normalised.excerpt(start, end), where)

    def evaluate(self, segments: Sequence[tuple[str, str]]) -> list[Match]:
        """Every rule and meta rule that matched, each once."""
        matched: dict[int, Match] = {}
        texts = distinct_segments(segments)
        # Someone else's words the sender quotes, and the quoted earlier mail: not the
        # sender's (gateway/rules/reported.py).
        reported = [not_the_senders(normalised.text, normalised.lines) for _, normalised in texts]
        for (where, normalised), spans in zip(texts, reported):
            for index, match in self.match_text(normalised, where, spans).items():
                matched.setdefault(index, match)
        matches = list(matched.values())
        for classifier in self.classifiers:
            found = _classify(classifier, texts, reported)
            if found is not None:
                matches.append(found)
        names = {m.rule for m in matches}
        categories = {m.category for m in matches}
        for meta in self.metas:
            if (meta.all_of and not all(r in names for r in meta.all_of)) or \
                    (meta.any_of and not any(r in names for r in meta.any_of)) or \
                    (meta.categories_at_least and len(categories) < meta.categories_at_least):
                continue
            matches.append(Match(meta.id, meta.category, meta.score,
                                 "combination: " + ", ".join(sorted(names)), "message"))
        return matches


def distinct_segments(segments: Iterable[tuple[str, str]]) -> list[tuple[str, Normalised]]:
    """Each segment normalised, without a body segment whose words all stand, in order and
    whole, in one of the few before it: the HTML half of a multipart/alternative usually
    repeats the plain half, and matching it again finds nothing new. Anything the HTML says
    that the plain text does not is still matched ("send nudes" is no repeat of "ssend
    nudess"). Only the last REPEAT_LOOKBACK bodies are compared, as alternatives stand side
    by side: against all of them, a message of thousands of small parts costs quadratic time,
    and a repeat that is kept costs only the time to match it again."""
    kept: list[tuple[str, Normalised]] = []
    bodies: list[str] = []
    for where, text in segments:
        normalised = normalise(text)
        if where == "body":
            words = normalised.text.strip()
            if bodies and (not words or any(f" {words} " in body
                                            for body in bodies[-REPEAT_LOOKBACK:])):
                continue
            bodies.append(f" {words} ")
        kept.append((where, normalised))
    return kept


def _classify(classifier: ClassifierRule, texts: Sequence[tuple[str, Normalised]],
              reported: Sequence[list[tuple[int, int]]]) -> Match | None:
    """The classifier's match if a unit of the message reaches its threshold.

    The model reads the sentences of the segments it applies to in order, Subject first."""
    sentences: list[list[str]] = []
    segments: list[tuple[int, str]] = []  # index of the segment's first word, where
    count = 0
    for (where, normalised), spans in zip(texts, reported):
        if _segment_kind(where) in classifier.applies_to:
            segments.append((count, where))
            for sentence in judged_sentences(normalised.lines, spans):
                sentences.append(sentence)
                count += len(sentence)
    if not count:
        return None
    detection = classifier.model.detect_sentences(sentences)
    if detection.probability < classifier.threshold:
        return None
    where = [where for start, where in segments if start <= detection.first_word][-1]
    # The words the model judged, as it read them (normalised): mapping them back to the
    # original would normalise the whole text once more, and the reviewer sees the original.
    words = [word for sentence in sentences for word in sentence]
    judged = " ".join(words[detection.first_word:detection.last_word + 1])
    return Match(classifier.id, detection.label, classifier.score,
                 f"p={detection.probability:.2f}: [[{judged}]]", where)


_ASCII_NOT_ALNUM = {c: " " for c in range(128) if not chr(c).isalnum()}
_NON_ASCII = regex.compile(r"[^\x00-\x7f]+")


def _on_word_edges(text: str) -> str:
    """The text with every character that is not a letter or digit as a space, and a space
    either side: same length but for the two, so offsets shift by one."""
    if not text.isascii():
        text = _NON_ASCII.sub(lambda m: "".join(c if c.isalnum() else " " for c in m.group()),
                              text)
    return " " + text.translate(_ASCII_NOT_ALNUM) + " "


def _segment_kind(where: str) -> str:
    return "subject" if where == "subject" else "headers" if where.startswith("header") \
        else "body"


_WORD_START = regex.compile(r"\W\w")
_WORD_REST = regex.compile(r"\w*")


def _words_between(text: str, a: int, b: int) -> int:
    """How many words start after the word at one hit, up to and including the other's."""
    low, high = min(a, b), max(a, b)
    return len(_WORD_START.findall(text, low, high + 1))


def judge(message: bytes, ruleset: RuleSet, quarantine_score: float) -> Verdict:
    """The verdict for one message. Never raises: what cannot be read is held for review."""
    try:
        if not message.strip():
            return Verdict("quarantine", 0.0, (), "unparseable message: empty")
        content = message_text(message)
        unreadable = [d for d in content.defects if "nested too deeply" in d]
        matches = ruleset.evaluate([(s.where, s.text) for s in content.segments])
    except (RecursionError, MemoryError, ValueError, LookupError, UnicodeError) as error:
        return Verdict("quarantine", 0.0, (), f"unparseable message: {type(error).__name__}")
    score = sum(m.score for m in matches)
    categories = sorted({m.category for m in matches})
    if unreadable:
        return Verdict("quarantine", score, tuple(matches),
                       f"unparseable message: {unreadable[0]}")
    if score >= quarantine_score:
        return Verdict("quarantine", score, tuple(matches),
                       f"score {score:g} >= {quarantine_score:g} ({', '.join(categories)})")
    return Verdict("deliver", score, tuple(matches), f"score {score:g} < {quarantine_score:g}")


def judge_text(text: str, ruleset: RuleSet) -> list[Match]:
    """Rules matched by a piece of body text (rule examples use this)."""
    return ruleset.evaluate([("body", text)])
