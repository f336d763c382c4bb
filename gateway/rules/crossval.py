"""Cross-validation of the learned classifier: how a change to training would do on replies the
model has not seen, without spending a held-out set.

    python -m gateway.rules.crossval [--folds 5] [--param NAME=VALUE ...] SOURCE...

SOURCE is what `veil rules train` reads. Every example falls in one fold by a checksum of where
it comes from (so the folds are the same from run to run and for every setting); each fold is
judged by a model trained on the others, with `training.train`'s keyword arguments set by
--param (strength=2, common=0.02, ...). It prints, for the model alone, the recall on harassing
examples and the false positives among benign ones at several thresholds, and the false
positives at fixed recall levels: compare settings at equal recall, since a change that only
moves along the same curve trades one for the other.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from gateway.rules.classifier import BENIGN
from gateway.rules.training import Example, _sentences, load_examples, train

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.92, 0.95, 0.98)
RECALLS = (0.60, 0.65, 0.70, 0.75)


def fold_of(example: Example, folds: int) -> int:
    # Shuffled copies and every line of a file keep their own source, so a checksum of it
    # spreads examples evenly and keeps each one in the same fold for every setting.
    return zlib.crc32(example.source.encode()) % folds


def _judge_fold(examples: Sequence[Example], fold: int, folds: int,
                params: dict[str, float]) -> list[tuple[bool, float]]:
    trained = [e for e in examples if fold_of(e, folds) != fold]
    judged = [e for e in examples if fold_of(e, folds) == fold]
    model = train(trained, **params)
    return [(e.label != BENIGN, model.detect_sentences(_sentences(e)).probability)
            for e in judged]


def out_of_fold(examples: Sequence[Example], folds: int,
                params: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(is harassing, probability) for every example, each from the model that did not see it."""
    with ProcessPoolExecutor(2) as pool:
        results = pool.map(_judge_fold, *zip(*((examples, f, folds, params)
                                                for f in range(folds))))
        pairs = [pair for fold in results for pair in fold]
    return (np.array([h for h, _ in pairs]), np.array([p for _, p in pairs]))


def report(harassing: np.ndarray, probability: np.ndarray) -> str:
    positives, negatives = probability[harassing], probability[~harassing]
    lines = [f"{len(positives)} harassing, {len(negatives)} benign"]
    for threshold in THRESHOLDS:
        lines.append(f"threshold {threshold:.2f}: recall {np.mean(positives >= threshold):.3f}, "
                     f"false positives {int(np.sum(negatives >= threshold))}")
    ranked = np.sort(positives)[::-1]
    for recall in RECALLS:
        threshold = ranked[int(recall * len(ranked)) - 1]
        lines.append(f"recall {recall:.2f} (threshold {threshold:.3f}): false positives "
                     f"{int(np.sum(negatives >= threshold))}")
    return "\n".join(lines)


def _param(text: str) -> tuple[str, float | bool]:
    name, _, value = text.partition("=")
    if value in ("true", "false"):
        return name, value == "true"
    return name, float(value) if "." in value or "e" in value else int(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.rules.crossval")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--param", action="append", default=[], type=_param)
    parser.add_argument("sources", nargs="+", type=Path)
    args = parser.parse_args(argv)
    examples = load_examples(args.sources)
    harassing, probability = out_of_fold(examples, args.folds, dict(args.param))
    print(report(harassing, probability))


if __name__ == "__main__":
    main()
