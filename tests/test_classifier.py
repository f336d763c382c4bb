"""The learned classifier: its fast scoring against the features it was trained on, training,
the model file, and how the rules engine uses it."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rules.classifier import (HEAD, TAIL, Classifier, ModelError, _ascii_sentences,
                                      ascii_sentences, best_unit, features_of,
                                      load_classifier, sentences_of, units_of, words_of,
                                      written_text)
from gateway.rules.normalise import normalise
from gateway.rules.engine import RuleError, judge, load_ruleset
from gateway.rules.training import Example, TrainingError, examples_from_jsonl, train

HARASSING = [
    ("looks", "you are so pretty, I love your smile"), ("looks", "your legs look amazing"),
    ("looks", "such a gorgeous face in your photo"), ("romantic", "are you single? dinner?"),
    ("romantic", "let me take you out on a date"), ("romantic", "I think I love you babe"),
    ("contact-request", "give me your private number 555 0182"),
    ("contact-request", "send me a selfie on whatsapp"),
    ("contact-request", "what is your instagram, text me tonight"),
]
BENIGN = [
    "the invoice for order 4471 is wrong", "please reset my password",
    "my parcel has not arrived yet", "the app crashes when I log in",
    "thanks for fixing the login problem", "can you send me the invoice again",
    "my phone number changed to 555 0199", "I need a refund for the broken charger",
    "the tracking number does not update", "please cancel my subscription",
]
EXAMPLES = [Example(label, text, "test") for label, text in HARASSING] + \
    [Example("benign", text, "test") for text in BENIGN]


@functools.cache
def trained() -> Classifier:
    return train(EXAMPLES, min_count=1)


@pytest.fixture
def model() -> Classifier:
    return trained()


def reference_logits(model: Classifier, words: list[str]) -> np.ndarray:
    """The sum of every feature's weights, feature by feature, as training counted them."""
    weights: dict[str, np.ndarray] = dict(zip(model.tokens, model.token_weights))
    weights.update(zip(model.stems, model.stem_weights))
    for key, row in zip(model.pair_keys, model.pair_weights):
        first, second = divmod(int(key), len(model.tokens))
        weights[model.tokens[first] + " " + model.tokens[second]] = row
    total = model.bias.astype(np.float64).copy()
    for feature in features_of(words):
        if feature in weights:
            total += weights[feature]
    return total


VOCABULARY = sorted({w for _, t in HARASSING for w in t.split()} |
                    {w for t in BENIGN for w in t.split()} |
                    {"unseen", "prettiest", "selfies", "12345", "7", "lovely"})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=30), min_size=1,
                max_size=5))
def test_every_unit_scores_its_features(sentences: list[list[str]]) -> None:
    model = trained()
    words = [w for sentence in sentences for w in sentence]
    starts, ends = units_of([len(s) for s in sentences], model.window)
    logits = model.unit_logits(words, starts, ends)
    assert logits.shape == (len(starts), len(model.labels) + 1)
    for start, end, row in zip(starts, ends, logits):
        assert 0 < end - start <= model.window
        np.testing.assert_allclose(row, reference_logits(model, words[start:end]),
                                   rtol=1e-4, atol=1e-4)


def test_units_are_sentences_pairs_and_windows_of_long_sentences() -> None:
    starts, ends = units_of([3, 5, 30, 2], 24)
    assert sorted(zip(starts.tolist(), ends.tolist())) == sorted(
        [(0, 3), (3, 8), (38, 40), (0, 8)] + [(8 + k, 32 + k) for k in range(7)])


def test_detection_is_the_best_unit(model: Classifier) -> None:
    sentences = [words_of(s) for s in ("the app crashes when I log in",
                                       "by the way you are so pretty", "thanks")]
    found = model.detect_sentences(sentences)
    words = [w for s in sentences for w in s]
    starts, ends = units_of([len(s) for s in sentences], model.window)
    logits = model.unit_logits(words, starts, ends)
    best = int(np.argmax(logits[:, 0]))
    assert (found.first_word, found.last_word) == (starts[best], ends[best] - 1)
    assert found.probability == pytest.approx(1 / (1 + np.exp(-logits[best, 0])), abs=1e-5)
    assert found.label == model.labels[int(np.argmax(logits[best, 1:]))]


def test_trained_model_separates_its_examples(model: Classifier) -> None:
    assert model.detect("are you single? you are so pretty").probability > 0.5
    assert model.detect("the invoice for order 4471 is wrong").probability < 0.5
    assert model.detect("your legs look amazing").label == "looks"
    assert model.detect("send me a selfie on whatsapp").label == "contact-request"


def test_a_harassing_sentence_inside_a_long_ordinary_mail_stands_out(model: Classifier) -> None:
    ordinary = " ".join(BENIGN * 6)
    alone = model.detect(ordinary)
    text = f"{ordinary}. your legs look amazing. {ordinary}"
    mixed = model.detect(text)
    assert mixed.probability > 0.5 > alone.probability
    assert words_of(text)[mixed.first_word:mixed.last_word + 1] == ["your", "legs", "look",
                                                                     "amazing"]


def test_saved_model_scores_as_trained(model: Classifier, tmp_path: Path) -> None:
    model.save(tmp_path / "m.npz")
    loaded = load_classifier(tmp_path / "m.npz")
    words = words_of("are you single? the invoice for order 4471 is wrong, 555 0182")
    starts, ends = units_of([len(words)], model.window)
    np.testing.assert_allclose(loaded.unit_logits(words, starts, ends),
                               model.unit_logits(words, starts, ends),
                               atol=0.02)  # weights are stored as float16


def test_words_outside_the_vocabulary_are_remembered_within_a_bound(model: Classifier) -> None:
    words = [f"zz{i}" for i in range(60_000)]
    model.codes(words)
    assert len(model._codes) <= len(model.tokens) + 50_001
    assert model.detect(" ".join(words[:30])).probability == pytest.approx(
        model.detect("zz1 zz2").probability, abs=1e-5)  # unknown words weigh nothing


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab c.!?;\n\x00\x01_-,'é", max_size=40))
def test_sentences_split_where_the_pattern_says(text: str) -> None:
    import re
    words = re.compile(r"[^\W_]+")
    pieces = re.split(r"[.!?;]+(?: |$)|\n", text)
    assert sentences_of(text) == [found for found in map(words.findall, pieces) if found]


def test_the_model_reads_what_the_sender_wrote() -> None:
    reply = normalise("Thanks, that fixed it!\n\nOn Monday Alex wrote:\n> You look hot\n"
                      "> in the photo\nBye\n-----Original Message-----\nFrom: Alex\nhot")
    assert written_text(reply.lines) == "thanks, that fixed it!\non monday alex wrote:\nbye"
    long = " ".join(f"w{i}" for i in range(2000))
    kept = written_text(long)
    assert kept.startswith("w0 w1 ") and kept.endswith(" w1998 w1999")
    assert len(kept) <= HEAD + TAIL + 1
    assert all(word.startswith("w") and word[1:].isdigit() for word in kept.split())


def test_the_ascii_fast_path_finds_the_same_words() -> None:
    import re
    pattern = re.compile(r"[^\W_]+")
    for text in ["hello_world x-y", "a1b2 c3!!d4", "  lead and trail  ", "tab\tand\x00nul",
                 "i'm ok; you're ok.", "___", ""]:
        assert words_of(text) == pattern.findall(text)
    assert words_of("héllo wörld") == ["héllo", "wörld"]


def test_training_data_errors_name_the_line(tmp_path: Path) -> None:
    data = tmp_path / "x.jsonl"
    data.write_text('{"label": "benign", "text": "ok"}\n{"label": "rude", "text": "x"}\n')
    with pytest.raises(TrainingError, match=r"x.jsonl:2: needs a text and a label"):
        examples_from_jsonl(data)
    data.write_text("not json\n")
    with pytest.raises(TrainingError, match=r"x.jsonl:1: not JSON"):
        examples_from_jsonl(data)
    with pytest.raises(TrainingError, match="benign examples"):
        train([Example("looks", "pretty", "t")])
    one_category = train([Example("looks", "so pretty", "t"), Example("looks", "", "t"),
                          *[e for e in EXAMPLES if e.label == "benign"]], min_count=1)
    assert one_category.labels == ("looks",)
    assert one_category.detect("so pretty").probability > \
        one_category.detect("please reset my password").probability


def _rule_file(folder: Path, model: str = "m.npz", threshold: float = 0.5) -> Path:
    (folder / "c.toml").write_text(
        f'[[classifier]]\nid = "model"\ndescription = "d"\nmodel = "{model}"\n'
        f'threshold = {threshold}\nscore = 10\n')
    return folder


def test_model_file_errors_stop_loading(model: Classifier, tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"c.toml: classifier model: .*m.npz: cannot read"):
        load_ruleset([_rule_file(tmp_path)])
    (tmp_path / "m.npz").write_bytes(b"not a model")
    with pytest.raises(RuleError, match=r"m.npz: not a classifier model"):
        load_ruleset([_rule_file(tmp_path)])
    np.savez(tmp_path / "m.npz", format=np.array(1), window=np.array(24),
             labels=np.array("looks"), bias=np.zeros(3), tokens=np.array("a"),
             token_weights=np.zeros((1, 2)), stems=np.array(""), stem_weights=np.zeros((0, 2)),
             pair_keys=np.zeros(0, dtype=np.int64), pair_weights=np.zeros((0, 2)))
    with pytest.raises(RuleError, match=r"m.npz: bias do not fit .*`veil rules train`"):
        load_ruleset([_rule_file(tmp_path)])
    model.save(tmp_path / "m.npz")
    with pytest.raises(RuleError, match="threshold is a probability"):
        load_ruleset([_rule_file(tmp_path, threshold=1.5)])
    with pytest.raises(ModelError, match="must be harassment categories"):
        Classifier(["benign"], model.bias, model.tokens, model.token_weights, model.stems,
                   model.stem_weights, model.pair_keys, model.pair_weights)


@pytest.mark.parametrize(("table", "error"), [
    ('model = "m.npz"\nthreshold = 0.5\nscore = 10\n', "missing id"),
    ('id = "x"\ndescription = "d"\nmodel = "m.npz"\nthreshold = 0.5\nscore = 10\nwords = 1\n',
     "unknown key"),
    ('id = "x"\ndescription = "d"\nmodel = "m.npz"\nthreshold = 0.5\nscore = "high"\n',
     "score must be a number"),
    ('id = "x"\ndescription = "d"\nmodel = 3\nthreshold = 0.5\nscore = 10\n',
     "model is the path"),
    ('id = "x"\ndescription = "d"\nmodel = "m.npz"\nthreshold = 0.5\nscore = 10\n'
     'applies_to = ["footer"]\n', "applies_to takes"),
])
def test_classifier_table_errors_name_the_file_and_key(model: Classifier, tmp_path: Path,
                                                       table: str, error: str) -> None:
    model.save(tmp_path / "m.npz")
    (tmp_path / "c.toml").write_text("[[classifier]]\n" + table)
    with pytest.raises(RuleError, match=f"c.toml: classifier .*{error}"):
        load_ruleset([tmp_path])


def test_engine_holds_what_the_model_finds(model: Classifier, tmp_path: Path) -> None:
    model.save(tmp_path / "m.npz")
    ruleset = load_ruleset([_rule_file(tmp_path)])
    message = ("Subject: order 4471\r\n\r\nThe invoice for order 4471 is wrong.\r\n"
               "Are you single? I love your smile.\r\n").encode()
    verdict = judge(message, ruleset, 10)
    assert verdict.action == "quarantine"
    [match] = verdict.matches
    assert match.rule == "model" and match.category in model.labels
    assert "single" in match.excerpt and match.excerpt.startswith("p=")
    assert match.where == "body"
    in_subject = judge(b"Subject: your legs look amazing\r\n\r\nPlease reset my password.\r\n",
                       ruleset, 10)
    assert [m.where for m in in_subject.matches] == ["subject"]
    assert judge(b"Subject: order\r\n\r\nPlease reset my password.\r\n", ruleset,
                 10).action == "deliver"
    assert judge(b"Subject: ...\r\n\r\n!!!\r\n", ruleset, 10).action == "deliver"


def test_shipped_classifier_catches_what_no_phrase_rule_was_written_for() -> None:
    ruleset = load_ruleset([ROOT / "rules"])
    assert [c.id for c in ruleset.classifiers] == ["model-harassment"]
    body = ("Hi Alex, thanks for sorting out the refund for order 88121. "
            "Honestly I keep rereading your emails just to imagine your voice saying them, "
            "we should grab a drink after your shift, just the two of us.")
    verdict = judge(f"Subject: Re: refund\r\n\r\n{body}\r\n".encode(), ruleset, 10)
    assert verdict.action == "quarantine", verdict


def test_rules_train_command_writes_a_model_the_rules_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(
        json.dumps({"label": e.label, "lang": "en", "text": e.text}) + "\n" for e in EXAMPLES))
    out = tmp_path / "rules" / "m.npz"
    result = subprocess.run([sys.executable, "-m", "gateway", "rules", "train", "--out",
                             str(out), "--min-count", "1", str(data)],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    assert "19 examples" in result.stdout
    ruleset = load_ruleset([_rule_file(out.parent)])
    assert judge(b"Subject: x\r\n\r\nyour legs look amazing, are you single\r\n", ruleset,
                 10).action == "quarantine"
    failed = subprocess.run([sys.executable, "-m", "gateway", "rules", "train", "--out",
                             str(out), str(tmp_path / "missing")],
                            capture_output=True, text=True, cwd=ROOT)
    assert failed.returncode == 2 and "no such file or folder" in failed.stderr


def test_shipped_model_is_what_the_committed_data_trains(tmp_path: Path) -> None:
    """rules/model/harassment.npz must be retrained whenever rules/training/ changes."""
    out = tmp_path / "m.npz"
    subprocess.run([sys.executable, "-m", "gateway", "rules", "train", "--out", str(out),
                    "tests/corpus/inbound", "rules/training"], cwd=ROOT, check=True,
                   capture_output=True)
    trained, shipped = load_classifier(out), load_classifier(ROOT / "rules/model/harassment.npz")
    assert (trained.labels, trained.tokens, trained.stems) == \
        (shipped.labels, shipped.tokens, shipped.stems)
    np.testing.assert_array_equal(trained.pair_keys, shipped.pair_keys)
    for name in ("bias", "token_weights", "stem_weights", "pair_weights"):
        # float16 storage; another machine's arithmetic may round a weight the other way
        np.testing.assert_allclose(getattr(trained, name), getattr(shipped, name), atol=0.01)


@pytest.mark.skipif(ascii_sentences is None, reason="gateway.rules._fold was not compiled "
                    "(no C compiler at install): sentences_of runs the Python lines")
@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(list("abZ09") + [" ", "  ", "\n", ". ", "! ", "? ", "; ", ".",
                                                 ";", "\0", "_", "-", "'", "word", "\t"]),
                max_size=40))
def test_compiled_sentence_split_is_the_python_one(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert ascii_sentences(text) == _ascii_sentences(text)


SHIPPED = ROOT / "rules/model/harassment.npz"
# Words the shipped model knows, alone and in pairs, and some it does not.
UNIT_WORDS = ("you", "are", "so", "pretty", "send", "me", "your", "number", "the", "invoice",
              "is", "wrong", "i", "know", "where", "live", "refund", "please", "zzqx", "4471")


@pytest.mark.skipif(best_unit is None, reason="gateway.rules._fold was not compiled "
                    "(no C compiler at install): detect_sentences runs the numpy lines")
@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.sampled_from(UNIT_WORDS), min_size=1, max_size=60), min_size=1,
                max_size=8))
def test_compiled_best_unit_is_the_numpy_one(sentences: list[list[str]]) -> None:
    model = load_shipped()  # sentences longer than its window (24) are judged window by window
    codes = model.codes([w for s in sentences for w in s])
    lengths = [len(s) for s in sentences]
    compiled = best_unit(codes, np.array(lengths, dtype=np.int64), model.window,
                         model._row_harassment, model.pair_keys, model._pair_harassment,
                         len(model.tokens))
    assert compiled == model._best_unit(codes, lengths)


@functools.cache
def load_shipped() -> Classifier:
    return load_classifier(SHIPPED)


@pytest.mark.skipif(best_unit is None, reason="gateway.rules._fold was not compiled")
def test_compiled_best_unit_refuses_arrays_that_do_not_fit() -> None:
    model = load_shipped()
    codes = model.codes(["you", "are"])
    arrays = (model._row_harassment, model.pair_keys, model._pair_harassment, len(model.tokens))
    with pytest.raises(ValueError, match="do not add up"):
        best_unit(codes, np.array([3], dtype=np.int64), 24, *arrays)
    with pytest.raises(ValueError, match="without words"):
        best_unit(codes, np.array([2, 0], dtype=np.int64), 24, *arrays)
    with pytest.raises(ValueError, match="outside the rows"):
        best_unit(np.array([10**9], dtype=np.int64), np.array([1], dtype=np.int64), 24, *arrays)
