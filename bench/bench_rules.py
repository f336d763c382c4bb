"""Inbound rule matching: messages/s on one core with the shipped rules (with and without the
learned classifier), and the cost with 1,000 generated rules against 10, measured in one run."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from gateway.heap import freeze_startup_state
from gateway.rules.engine import RuleSet, judge, load_ruleset

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["thanks", "for", "the", "quick", "reply", "about", "my", "order", "the", "invoice", "shows", "the", "wrong", "amount", "and", "the", "tracking", "number", "has", "not", "updated", "since", "monday", "could", "you", "check", "with", "the", "warehouse", "and", "let", "me", "know", "when", "the", "replacement", "ships", "our", "team", "relies", "on", "this", "integration", "daily"]


def inbound_message(index: int, size: int = 10_240) -> bytes:
    """A ~`size`-byte multipart/alternative reply: plain text and an HTML copy of a third of it."""
    rng = random.Random(index)
    lines: list[str] = []
    while sum(len(line) + 2 for line in lines) * 4 // 3 + 600 < size:
        lines.append(" ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + ".")
    body = "\r\n".join(lines)
    html = "".join(f"<p>{line}</p>\r\n" for line in lines[: len(lines) // 3])
    return (f"From: Customer {index} <c{index}@example.net>\r\nTo: alex.morgan@support.example\r\n"
            f"Subject: Re: order {index}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="b{index}"\r\n\r\n'
            f"--b{index}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            f"--b{index}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f"<html><body>{html}</body></html>\r\n--b{index}--\r\n").encode()


def generated_rules(count: int) -> str:
    rng = random.Random(count)
    rules = []
    for index in range(count):
        terms = ", ".join(f'"{rng.choice(WORDS)}zq{index}{k}"' for k in range(3))
        near = (f'near = [{{ a = ["send{index}"], b = ["pic{index}"], within = 3 }}]\n'
                if index % 4 == 0 else "")
        pattern = (f'anchors = ["anchor{index}"]\npatterns = [\'anchor{index} (?:a|b) word\']\n'
                   if index % 5 == 0 else "")
        rules.append(f'[[rule]]\nid = "gen-{index}"\ncategory = "generated"\n'
                     f'description = "generated"\nscore = 1\nterms = [{terms}]\n{near}{pattern}')
    return "\n".join(rules)


def rate(ruleset: RuleSet, messages: list[bytes], seconds: float = 3.0) -> float:
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for message in messages:
            judge(message, ruleset, 10)
        done += len(messages)
    return done / (time.perf_counter() - started)


def main() -> None:
    messages = [inbound_message(i) for i in range(50)]
    shipped = load_ruleset([ROOT / "rules"])
    freeze_startup_state()  # as `veil check` does once its rules are loaded
    print(f"messages: {len(messages)} of ~{sum(map(len, messages)) // len(messages)} bytes")
    shipped_rate = rate(shipped, messages)
    print(f"shipped rules ({len(shipped)}, classifier included): {shipped_rate:.0f} "
          "messages/s on one core (target >= 1000)")
    phrases_only = RuleSet(shipped.rules, shipped.metas)
    phrases_rate = rate(phrases_only, messages)
    print(f"shipped phrase rules without the classifier: {phrases_rate:.0f} messages/s; "
          f"the classifier costs {phrases_rate / shipped_rate - 1:.0%} more per message")
    with tempfile.TemporaryDirectory() as folder:
        rates = {}
        for count in (10, 1000):
            path = Path(folder) / f"rules-{count}.toml"
            path.write_text(generated_rules(count))
            ruleset = load_ruleset([path])
            rates[count] = rate(ruleset, messages)
            print(f"{count} generated rules: {rates[count]:.0f} messages/s, "
                  f"{1000 / rates[count]:.3f} ms per message")
    print(f"cost ratio 1000 rules / 10 rules: {rates[10] / rates[1000]:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
