"""`veil check`, `veil rules eval`, `veil rules test` and `veil rules train`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import load_config
from gateway.heap import freeze_startup_state
from gateway.rules.engine import RuleSet, Verdict, judge, judge_text, load_ruleset
from gateway.rules.normalise import normalise


def _ruleset(args: argparse.Namespace) -> tuple[RuleSet, float]:
    config = load_config(args.config)
    ruleset = load_ruleset(config.rules.paths)
    freeze_startup_state()
    return ruleset, config.rules.quarantine_score


def _verdict_for_file(path: str, ruleset: RuleSet, threshold: float) -> Verdict:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        return Verdict("quarantine", 0.0, (), f"unreadable file: {error.strerror or error}")
    return judge(raw, ruleset, threshold)


def _check(args: argparse.Namespace) -> int:
    ruleset, threshold = _ruleset(args)
    for path in args.files:
        verdict = _verdict_for_file(path, ruleset, threshold)
        if args.json:
            print(json.dumps({
                "file": path, "verdict": verdict.action, "score": verdict.score,
                "reason": verdict.reason,
                "matches": [{"rule": m.rule, "category": m.category, "score": m.score,
                             "excerpt": m.excerpt} for m in verdict.matches]},
                ensure_ascii=False))
        else:
            rules = ", ".join(m.rule for m in verdict.matches) or "no rules"
            print(f"{path}: {verdict.action} (score {verdict.score:g}; {rules})")
    return 0


@dataclass
class _Tally:
    true_positive: int = 0
    false_negative: int = 0
    false_positive: int = 0
    true_negative: int = 0
    wrong: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        positives = self.true_positive + self.false_positive
        actual = self.true_positive + self.false_negative
        negatives = self.false_positive + self.true_negative
        precision = self.true_positive / positives if positives else 1.0
        recall = self.true_positive / actual if actual else 1.0
        fp_rate = self.false_positive / negatives if negatives else 0.0
        return (f"{name:<22} precision {precision:.3f}  recall {recall:.3f}  "
                f"false-positive rate {fp_rate:.3f}  ({actual} harassing, {negatives} benign)")


def evaluate(folder: Path, ruleset: RuleSet, threshold: float) -> tuple[_Tally, dict[str, _Tally]]:
    """Overall and per-category results on DIR/harass/**.eml and DIR/benign/**.eml.

    A harassing file's category is its first sub-folder under harass/ (harass/threat/x.eml).
    A benign file held counts as a false positive of the categories whose rules matched it."""
    overall = _Tally()
    categories: dict[str, _Tally] = {}
    harassing = sorted((folder / "harass").rglob("*.eml"))
    benign = sorted((folder / "benign").rglob("*.eml"))
    for path in harassing:
        relative = path.relative_to(folder / "harass")
        category = relative.parts[0] if len(relative.parts) > 1 else "uncategorised"
        tally = categories.setdefault(category, _Tally())
        held = judge(path.read_bytes(), ruleset, threshold).action == "quarantine"
        for target in (overall, tally):
            if held:
                target.true_positive += 1
            else:
                target.false_negative += 1
        if not held:
            overall.wrong.append(f"missed: {path}")
    for path in benign:
        verdict = judge(path.read_bytes(), ruleset, threshold)
        held = verdict.action == "quarantine"
        if held:
            overall.false_positive += 1
        else:
            overall.true_negative += 1
        blamed = {m.category for m in verdict.matches} if held else set()
        for name, tally in categories.items():
            if name in blamed:
                tally.false_positive += 1
            else:
                tally.true_negative += 1
        if held:
            overall.wrong.append(f"false positive: {path} ({verdict.reason})")
    return overall, categories


def _eval(args: argparse.Namespace) -> int:
    ruleset, threshold = _ruleset(args)
    folder = Path(args.dir)
    if not (folder / "harass").is_dir() or not (folder / "benign").is_dir():
        print(f"veil: {folder} needs harass/ and benign/ sub-folders of .eml files",
              file=sys.stderr)
        return 2
    overall, categories = evaluate(folder, ruleset, threshold)
    print(overall.line("overall"))
    for name in sorted(categories):
        print(categories[name].line(name))
    for line in overall.wrong:
        print(line)
    return 0


def rule_example_failures(ruleset: RuleSet) -> list[str]:
    """Every rule example that does not behave as the rule says."""
    failures: list[str] = []
    for rule in (*ruleset.rules, *ruleset.classifiers):
        for example in rule.match_examples:
            if rule.id not in {m.rule for m in judge_text(example, ruleset)}:
                failures.append(f"{rule.source}: should match {example!r}")
        for example in rule.no_match_examples:
            if rule.id in {m.rule for m in judge_text(example, ruleset)}:
                failures.append(f"{rule.source}: should not match {example!r}")
    for exception in ruleset.exceptions:
        for example in exception.match_examples:
            if not any(p.search(normalise(example).text) for p in exception.patterns):
                failures.append(f"{exception.source}: should find something in {example!r}")
        for example in exception.no_match_examples:
            if any(p.search(normalise(example).text) for p in exception.patterns):
                failures.append(f"{exception.source}: should find nothing in {example!r}")
    return failures


def _test(args: argparse.Namespace) -> int:
    ruleset, _ = _ruleset(args)
    failures = rule_example_failures(ruleset)
    for failure in failures:
        print(failure)
    print(f"{len(ruleset.rules)} rules, {len(failures)} failing examples")
    return 1 if failures else 0


def _train(args: argparse.Namespace) -> int:
    from gateway.rules.training import TrainingError, load_examples, train

    try:
        examples = load_examples(Path(source) for source in args.sources)
        model = train(examples, strength=args.strength, min_count=args.min_count)
    except TrainingError as error:
        print(f"veil: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"veil: training needs scikit-learn ({error}); pip install 'veil[train]'",
              file=sys.stderr)
        return 2
    model.save(Path(args.out))
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.label] = counts.get(example.label, 0) + 1
    print(f"{args.out}: {len(examples)} examples ("
          + ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
          + f"), {len(model.tokens)} words, {len(model.stems)} stems, "
          f"{len(model.pair_keys)} word pairs")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = subparsers.add_parser("check", help="the inbound verdict for each message file")
    check.add_argument("--config", default="config.toml")
    check.add_argument("--json", action="store_true", help="one JSON object per line")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=_check)

    rules = subparsers.add_parser("rules", help="the harassment rule set")
    commands = rules.add_subparsers(dest="rules_command", required=True)
    evaluation = commands.add_parser("eval", help="precision, recall and false positives on DIR")
    evaluation.add_argument("--config", default="config.toml")
    evaluation.add_argument("dir", metavar="DIR")
    evaluation.set_defaults(func=_eval)
    test = commands.add_parser("test", help="run every rule's own examples")
    test.add_argument("--config", default="config.toml")
    test.set_defaults(func=_test)
    training = commands.add_parser(
        "train", help="train the classifier on labelled .jsonl files and .eml folders")
    training.add_argument("--out", default="rules/model/harassment.npz", metavar="PATH")
    training.add_argument("--strength", type=float, default=4.0,
                          help="inverse regularisation strength (default 4)")
    training.add_argument("--min-count", type=int, default=2,
                          help="drop features seen in fewer examples (default 2)")
    training.add_argument("sources", nargs="+", metavar="SOURCE",
                          help="a .jsonl file, a folder of them, or DIR/harass + DIR/benign")
    training.set_defaults(func=_train)
