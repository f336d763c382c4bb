"""Cross-validation's bookkeeping: stable folds and the figures it reports."""

import numpy as np

from gateway.rules.crossval import fold_of, report
from gateway.rules.training import Example


def test_an_example_stays_in_its_fold_and_folds_cover_the_range() -> None:
    examples = [Example("benign", "text", f"file.jsonl:{n}") for n in range(500)]
    folds = [fold_of(e, 5) for e in examples]
    assert folds == [fold_of(e, 5) for e in examples]
    assert set(folds) == {0, 1, 2, 3, 4}
    assert min(folds.count(f) for f in range(5)) > 60  # spread, not all in one


def test_report_counts_recall_and_false_positives() -> None:
    harassing = np.array([True] * 10 + [False] * 4)
    probability = np.array([0.99, 0.97, 0.96, 0.93, 0.91, 0.85, 0.75, 0.6, 0.3, 0.1,
                            0.95, 0.8, 0.4, 0.2])
    lines = report(harassing, probability).splitlines()
    assert lines[0] == "10 harassing, 4 benign"
    assert "threshold 0.92: recall 0.400, false positives 1" in lines
    assert "threshold 0.50: recall 0.800, false positives 2" in lines
    # recall 0.70: the 7th most likely harassing example (0.75) is the threshold
    assert "recall 0.70 (threshold 0.750): false positives 2" in lines
