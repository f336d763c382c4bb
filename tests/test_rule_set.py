"""The shipped rule set: its own examples, the labelled corpus, and the engine's contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT

from gateway.rules.classifier import written_text
from gateway.rules.commands import evaluate, rule_example_failures
from gateway.rules.engine import RuleError, RuleSet, _on_word_edges, judge, load_ruleset
from gateway.rules.normalise import normalise
from gateway.rules.text import visible_html_text
from gateway.rules.training import load_examples

CORPUS = ROOT / "tests" / "corpus" / "inbound"
RULESET = load_ruleset([ROOT / "rules"])


def test_every_rule_example_behaves() -> None:
    assert rule_example_failures(RULESET) == []


def test_no_pattern_is_anchored_on_a_common_word() -> None:
    # A pattern runs in a window around each anchor found: an anchor such as "me", in one
    # reply of six, runs it over nearly every message (rules cost 7.2 M instructions a
    # message against 4.6 M when one rule did).
    replies = [e for e in load_examples([ROOT / "rules" / "training"]) if e.label == "benign"]
    texts = [_on_word_edges(normalise(e.text).text) for e in replies[::5]]
    common = []
    for rule in RULESET.rules:
        for anchor in rule.anchors:
            word = anchor.rstrip("*")
            key = _on_word_edges(word)[:-1] if anchor.endswith("*") else _on_word_edges(word)
            share = sum(key in text for text in texts) / len(texts)
            if share > 0.05:
                common.append(f"{rule.source}: anchor {anchor!r} is in {share:.0%} of replies")
    assert texts and common == []


def test_rule_set_covers_every_category_in_four_languages() -> None:
    categories = {"sexual", "looks", "romantic", "contact-request", "stalking", "threat",
                  "gendered-insult"}
    for language in ("en", "es", "de", "fr"):
        covered = {r.category for r in RULESET.rules if r.id.startswith(language + "-")}
        assert categories <= covered, (language, categories - covered)


def test_corpus_per_category() -> None:
    overall, categories = evaluate(CORPUS, RULESET, 10)
    assert len(list(CORPUS.rglob("*.eml"))) >= 150
    assert overall.wrong == []
    assert set(categories) == {"sexual", "looks", "romantic", "contact-request", "stalking",
                               "threat", "gendered-insult"}
    for name, tally in categories.items():
        assert tally.false_negative == 0, name
        assert tally.false_positive == 0, name


@pytest.mark.parametrize("text", [
    "you are so hot", "y o u  a r e  s o  h o t", "YOU ARE SO HOTTTT", "yоu аrе sо hоt",
    "you are so h0t", "you are so h\u200bot", "ｙｏｕ ａｒｅ ｓｏ ｈｏｔ", "you.are.so.hot",
])
def test_evasions_do_not_help(text: str) -> None:
    assert "en-looks-you-are" in {m.rule for m in judge(text.encode(), RULESET, 10).matches} or \
        judge(f"Subject: x\r\n\r\n{text}\r\n".encode(), RULESET, 10).action == "quarantine"


@pytest.mark.parametrize("text", [
    "Please execute the script", "We are in Sussex", "Scunthorpe office", "kill the process",
    "the hot fix failed", "dating back to 2019", "hit me with the invoice",
    "I'll come by the office", "this damn software is garbage", "order 1 2 3 4 shipped",
    "codes a1b2 and x9y8 failed",
])
def test_ordinary_words_do_not_hurt(text: str) -> None:
    verdict = judge(f"Subject: support\r\n\r\n{text}\r\n".encode(), RULESET, 10)
    assert verdict.action == "deliver", verdict


def test_excerpt_shows_the_original_text() -> None:
    verdict = judge("Subject: hi\r\n\r\nwell h\u200bey, y o u  a r e  s o  H0TTT!\r\n".encode(),
                    RULESET, 10)
    [match] = [m for m in verdict.matches if m.rule == "en-looks-you-are"]
    assert "[[y o u a r e s o H0TTT]]" in match.excerpt


def test_normalisation_keeps_a_map_to_the_original() -> None:
    text = "Ｓ-E-X-Y café"
    normalised = normalise(text)
    assert normalised.text == "sexy cafe"
    assert [text[i] for i in normalised.offsets] == ["Ｓ", "E", "X", "Y", " ", "c", "a", "f", "é"]
    assert normalised.excerpt(0, 4, context=0) == "[[Ｓ-E-X-Y]]"


@pytest.mark.parametrize("body, problem", [
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\n'
      'anchors = ["a"]\npatterns = ["(a+)+b"]\n'), "nests quantifiers"),
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\n'
      'anchors = ["a"]\npatterns = ["(unclosed"]\n'), "does not compile"),
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\n'
      'patterns = ["abc"]\n'), "need anchors"),
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\nterms = ["a"]\n'
      'colour = "red"\n'), "unknown key"),
    ('[[rule]]\nid = "x"\ncategory = "c"\nscore = 1\nterms = ["a"]\n', "missing description"),
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\nterms = ["a"]\n'
      '[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\nterms = ["b"]\n'),
     "duplicate rule id"),
    ('[[meta]]\nid = "m"\ncategory = "c"\ndescription = "d"\nscore = 1\nall_of = ["nope"]\n',
     "unknown rule 'nope'"),
    (('[[rule]]\nid = "x"\ncategory = "c"\ndescription = "d"\nscore = 1\nterms = ["a"]\n'
      'unless_sets = ["nope"]\n'), "unknown exception 'nope'"),
    (('[[exception]]\nid = "e"\ndescription = "d"\npatterns = ["a"]\n'
      '[[exception]]\nid = "e"\ndescription = "d"\npatterns = ["b"]\n'), "duplicate exception id"),
    ('[[exception]]\nid = "e"\npatterns = ["a"]\n', "missing description"),
])
def test_bad_rule_files_name_file_rule_and_reason(tmp_path: Path, body: str,
                                                  problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(RuleError) as caught:
        load_ruleset([path])
    assert str(path) in str(caught.value) and problem in str(caught.value)


def _rule_table(rule_id: str, category: str, body: str) -> str:
    """A [[rule]] table with the required keys, `body` holding the rest."""
    return (f'[[rule]]\nid = "{rule_id}"\ncategory = "{category}"\ndescription = "d"\n'
            f'score = 10\n{body}')


def _matcher(rules: RuleSet) -> Callable[[str], set[str]]:
    """The ids of the rules that match a piece of body text."""
    return lambda text: {m.rule for m in rules.evaluate([("body", text)])}


def test_second_person_words_of_a_rule_match_their_text_speak_spellings(tmp_path: Path) -> None:
    path = tmp_path / "textspeak.toml"
    path.write_text(
        _rule_table("home", "stalking", 'terms = ["i know where you live"]\n')
        + _rule_table("route", "stalking", 'anchors = ["bus"]\n'
                      'patterns = [\'\\byou took the \\d+ bus\']\n'
                      'unless = [\'\\b(?:did|have) you took\']\n')
        + _rule_table("yours", "stalking", 'terms = ["your flat is the one"]\n'))
    matched = _matcher(load_ruleset([path]))

    assert matched("i know where u live") == {"home"}
    assert matched("u took the 27 bus at six") == {"route"}
    assert matched("did u took the 27 bus") == set()          # the exception reads "u" too
    assert matched("ur flat is the one with the green door") == {"yours"}
    assert matched("you took the u bahn") == set()
    assert matched("i know where you lived") == set()          # still whole words


def test_a_shared_exception_excuses_the_hits_of_the_rules_that_name_it(tmp_path: Path) -> None:
    (tmp_path / "shared.toml").write_text(
        '[[exception]]\nid = "thanks"\ndescription = "d"\n'
        'patterns = [\'love you(?=[^.]{0,30}thank)\']\n')
    (tmp_path / "rules.toml").write_text(
        _rule_table("named", "romantic", 'terms = ["love you", "be mine"]\n'
                    'unless_sets = ["thanks"]\n')
        + _rule_table("unnamed", "romantic", 'terms = ["love you"]\n'))
    matched = _matcher(load_ruleset([tmp_path]))

    assert matched("love you, thank you so much") == {"unnamed"}
    assert matched("love you. thank you") == {"named", "unnamed"}    # another sentence
    assert matched("be mine, love you, thank you") == {"named", "unnamed"}  # beside it: a hit


def test_shared_exceptions_keep_affection_as_thanks_and_threats_at_the_company_out() -> None:
    def held(text: str) -> bool:
        return judge(f"Subject: Re: ticket\r\n\r\n{text}\r\n".encode(), RULESET,
                     10).action == "quarantine"

    assert not held("Omg you're a lifesaver, I love you! The payment finally went through.")
    assert not held("Vous allez le regretter, je saisis le médiateur dès demain.")
    assert held("You'll regret it. I know where you park.")
    assert held("Thank you for the refund. I love you and I want to take you to dinner.")


def test_meta_rule_adds_up_signals_from_several_categories() -> None:
    verdict = judge(b"Subject: hi\r\n\r\nthanks babe, can i get your number\r\n", RULESET, 10)
    assert {m.rule for m in verdict.matches} >= {"en-endearment", "en-contact-number",
                                                 "en-several-categories"}
    assert verdict.action == "quarantine"


@pytest.mark.parametrize("raw", [
    b"", b"\r\n", b"\x00\x01\x02" * 1000, b"Subject: " + b"a" * 1_000_000 + b"\r\n\r\nx",
    b"Content-Type: text/plain; charset=klingon\r\n\r\n\xff\xfe you are so hot",
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi',
    b"MIME-Version: 1.0\r\n" + b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
        for i in range(150)) + b"Content-Type: text/plain\r\n\r\nhello\r\n",
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
])
def test_hostile_input_gets_a_verdict(raw: bytes) -> None:
    verdict = judge(raw, RULESET, 10)
    assert verdict.action in ("quarantine", "deliver")


def test_unparseable_messages_are_held() -> None:
    assert judge(b"", RULESET, 10).action == "quarantine"
    deep = b"MIME-Version: 1.0\r\n" + b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
        for i in range(150)) + b"Content-Type: text/plain\r\n\r\nhello\r\n"
    assert judge(deep, RULESET, 10).reason.startswith("unparseable")


def test_hidden_html_and_comments_are_not_what_a_person_sees() -> None:
    hidden = (b"Content-Type: text/html\r\n\r\n<p>Your invoice is attached.</p>"
              b'<div style="display:none">you are so hot</div><!-- you are so hot -->')
    assert judge(hidden, RULESET, 10).action == "deliver"
    shown = b"Content-Type: text/html\r\n\r\n<p>you are <b>so</b> <i>hot</i></p>"
    assert judge(shown, RULESET, 10).action == "quarantine"


@pytest.mark.parametrize("wrapped", ["<noscript>{}</noscript>", "<svg><text>{}</text></svg>",
                                     '<object data="x.swf">{}</object>', '<img src="x" alt="{}">'])
def test_html_that_mail_clients_show_is_read(wrapped: str) -> None:
    # Mail clients run no scripts, load no objects and often no images: the fallback content
    # (an image's alt text) is what they show.
    html = "<p>Order 4471.</p>" + wrapped.format("send nudes now")
    assert judge(f"Content-Type: text/html\r\n\r\n{html}".encode(), RULESET, 10).action == \
        "quarantine"


def test_emoji_that_stand_for_words_are_read_as_them() -> None:
    normalised = normalise("\U0001f52a\U0001f52a see you soon Hannah \U0001f52a")
    assert normalised.text.split() == ["knife", "knife", "see", "you", "soon", "hannah", "knife"]
    assert normalised.excerpt(1, 12, context=0) == "[[\U0001f52a\U0001f52a]]"
    threat = ("Subject: Re: Ticket 3318\r\n\r\n"
              "\U0001f52a\U0001f52a see you soon Hannah \U0001f52a\r\n")
    assert judge(threat.encode(), RULESET, 10).action == "quarantine"
    thanks = "Subject: Re: Ticket 3318\r\n\r\nI \U0001f60d the new dashboard, thank you!\r\n"
    assert judge(thanks.encode(), RULESET, 10).action == "deliver"


def test_html_blockquote_is_quoted_like_the_lines_of_a_plain_reply() -> None:
    # A reply's HTML half quotes the agent's own mail in a <blockquote>; the classifier must
    # leave it out as it leaves out "> " lines, or the agent's words count against the customer.
    html = ("<p>Do you ship to Ireland?</p><p>On Sun, Alex Morgan wrote:</p><blockquote>"
            "<p>Hi,</p><p>Could you send me a screenshot?</p><blockquote>older</blockquote>"
            "<p>Kind regards</p></blockquote><p>Thanks</p>")
    text = visible_html_text(html)
    assert [line for line in text.splitlines() if any(c.isalnum() for c in line)] == [
        "Do you ship to Ireland?", "On Sun, Alex Morgan wrote:", "> Hi,",
        "> Could you send me a screenshot?", "> > older", "> Kind regards", "Thanks"]
    written = written_text(normalise(text).lines)
    assert "ireland" in written and "thanks" in written
    assert "screenshot" not in written and "older" not in written


@pytest.mark.parametrize("depth", [300, 3000])
def test_html_nested_deeper_than_the_parser_goes_is_still_read(depth: int) -> None:
    # libxml2 drops what lies deeper than 256 levels (2,048 with huge_tree); a client shows it.
    nested = "<div>" * depth + "send nudes now" + "</div>" * depth
    message = f"Content-Type: text/html\r\n\r\n{nested}".encode()
    assert judge(message, RULESET, 10).action == "quarantine"


def test_check_command_prints_one_json_verdict_per_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"\x00garbage")
    files = [str(CORPUS / "harass" / "threat" / "en-00-plain.eml"),
             str(CORPUS / "benign" / "en-00-plain.eml"), str(broken), str(tmp_path / "none.eml")]
    result = subprocess.run([sys.executable, "-m", "gateway", "check", "--json",
                             "--config", str(tmp_path / "config.toml"), *files],
                            cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2  # no config in tmp_path: the error names the file
    assert b"config.toml" in result.stderr
    result = subprocess.run([sys.executable, "-m", "gateway", "check", "--json", *files],
                            cwd=ROOT, capture_output=True, timeout=60, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == files
    assert [line["verdict"] for line in lines] == ["quarantine", "deliver", "deliver",
                                                   "quarantine"]
    assert lines[0]["matches"][0]["category"] == "threat"
    assert set(lines[0]["matches"][0]) == {"rule", "category", "score", "excerpt"}


def test_html_that_repeats_the_plain_text_is_read_once_and_extra_html_still_counts() -> None:
    from gateway.rules.engine import distinct_segments
    from gateway.rules.text import message_text

    def read_once(message: bytes) -> list[str]:
        return [where for where, _ in
                distinct_segments((s.where, s.text) for s in message_text(message).segments)]

    def alternative(plain: str, html: str) -> bytes:
        return (f'Subject: s\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n'
                f"--b\r\nContent-Type: text/plain\r\n\r\n{plain}\r\n--b\r\n"
                f"Content-Type: text/html\r\n\r\n{html}\r\n--b--\r\n").encode()

    same = alternative("Thanks for the refund.\r\nBest", "<p>Thanks for the refund.</p><p>Best</p>")
    assert read_once(same) == ["subject", "body"]
    extra = alternative("Thanks for the refund.", "<p>Thanks for the refund.</p><p>you are so hot</p>")
    assert judge(extra, RULESET, 10).action == "quarantine"
    # The HTML's words inside longer words of the plain text are no repeat of it.
    inside_words = alternative("Please ssend nudess today", "<p>send nudes</p>")
    assert read_once(inside_words) == ["subject", "body", "body"]
    assert judge(inside_words, RULESET, 10).action == "quarantine"
