"""Text built to make matching slow still gets a verdict.

A message under 256 KB is judged on the event loop, so a step whose cost grows with the square
of the text would stall every connection of the worker. Each text below took minutes with
such a step (thousands of first words of a proximity rule out of reach of thousands of second
words; single letters that never reach a word edge, which the spaced-letter step retried from
each letter; thousands of text parts, each compared with all before it as a possible repeat)
and takes about a second now. The subprocess's timeout is a guard against a hang,
not a measure of speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from gateway.rules.normalise import SPACED_LETTERS, normalise

JUDGE = """
import json, sys
from pathlib import Path
from gateway.rules.engine import judge, load_ruleset
ruleset = load_ruleset([Path(sys.argv[1]) / "rules"])
verdicts = []
for body in json.loads(sys.stdin.read()):
    message = body if body.startswith("Content-Type") else "Subject: hello\\r\\n\\r\\n" + body
    verdict = judge(message.encode(), ruleset, 10)
    verdicts.append([verdict.action, [m.rule for m in verdict.matches]])
print(json.dumps(verdicts))
"""


def test_texts_built_to_be_slow_are_judged() -> None:
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\nline {i} of the log\r\n"
                    for i in range(16_000))
    bodies = [
        "message " * 30_000 + "nothing in between. " + "instagram " * 30_000,
        "a_ " * 150_000 + "now send nudes",
        # Every text part was compared with every one before it, in case it repeated it.
        f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n{parts}--b\r\n'
        "Content-Type: text/plain\r\n\r\nsend nudes now\r\n--b--\r\n",
        # Thousands of quotations, each behind a reporting frame, and of apostrophes.
        'he wrote "you are" and reported it ' * 5_000 + "don't " * 20_000 + "send nudes now",
    ]
    result = subprocess.run([sys.executable, "-c", JUDGE, str(ROOT)], input=json.dumps(bodies),
                            capture_output=True, text=True, timeout=120, check=True)
    proximity, spaced, many_parts, quotations = json.loads(result.stdout)
    assert proximity[0] in ("deliver", "quarantine")
    assert many_parts[0] == "quarantine"
    assert quotations[0] == "quarantine"  # the sender's own words after them still count
    assert spaced[0] == "quarantine" and "en-photo-near" in spaced[1]  # its excerpt was built too


def test_a_spaced_run_joins_at_most_so_many_letters() -> None:
    letters = " ".join(chr(ord("a") + i % 26) for i in range(SPACED_LETTERS + 6))
    first, *rest = [len(word) for word in normalise(letters).text.split()]
    # The six letters after the bound are a run of their own (which the word list may split).
    assert first == SPACED_LETTERS and sum(rest) == 6
