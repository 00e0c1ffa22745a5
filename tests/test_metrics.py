"""Evaluation against hand-computed small cases and against sklearn."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, top_k_accuracy_score

from core.runs.evaluation import Evaluation

# Three classes, six images. Argmax predictions: [0, 1, 1, 2, 0, 2] -> mistakes at 2 (0->1) and 4 (1->0).
SCORES3 = np.array([
    [0.7, 0.2, 0.1],
    [0.1, 0.8, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.2, 0.7],
    [0.9, 0.06, 0.04],
    [0.2, 0.3, 0.5],
])
Y3 = np.array([0, 1, 0, 2, 1, 2])

# Two classes, positive = 1. Positive-class scores: 0.9 0.6 0.4 0.2 0.7 0.55; truth 1 1 1 0 0 0.
POS = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.55])
Y2 = np.array([1, 1, 1, 0, 0, 0])


@pytest.fixture
def multi() -> Evaluation:
    return Evaluation(["cat", "dog", "fox"], Y3, SCORES3, paths=[f"img{i}.jpg" for i in range(6)])


@pytest.fixture
def binary() -> Evaluation:
    return Evaluation(["other", "flower"], Y2, np.column_stack([1 - POS, POS]),
                      paths=[f"f{i}.jpg" for i in range(6)])


def test_accuracy(multi: Evaluation) -> None:
    assert multi.accuracy() == pytest.approx(4 / 6)
    assert multi.accuracy() == pytest.approx(accuracy_score(Y3, SCORES3.argmax(1)))


def test_top_k(multi: Evaluation) -> None:
    assert multi.top_k_accuracy(1) == pytest.approx(multi.accuracy())
    assert multi.top_k_accuracy(2) == pytest.approx(1.0)  # both mistakes have the truth second
    assert multi.top_k_accuracy(3) == 1.0
    for k in (1, 2):
        assert multi.top_k_accuracy(k) == pytest.approx(top_k_accuracy_score(Y3, SCORES3, k=k, labels=[0, 1, 2]))
    with pytest.raises(ValueError, match="between 1 and 3"):
        multi.top_k_accuracy(4)


def test_top_k_ties_rank_like_argmax() -> None:
    """A tie ranks the lower class index first, so top-1 accuracy always equals argmax accuracy."""
    ev = Evaluation(["a", "b", "c"], [1, 2], [[0.4, 0.4, 0.2], [0.5, 0.25, 0.25]])
    assert ev.top_k_accuracy(1) == ev.accuracy() == 0.0
    assert ev.top_k_accuracy(2) == 0.5  # row 2: "b" beats "c" in the tie


def test_confusion_rows_are_true_class(multi: Evaluation) -> None:
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 2]])
    np.testing.assert_array_equal(multi.confusion(), expected)
    np.testing.assert_allclose(multi.confusion(normalize=True).sum(axis=1), 1.0)


def test_report_matches_sklearn(multi: Evaluation) -> None:
    report = multi.report()
    assert list(report.index) == ["cat", "dog", "fox", "macro avg", "weighted avg"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.at["weighted avg", "f1"] == pytest.approx(f1_score(Y3, SCORES3.argmax(1), average="weighted"))
    assert report.at["fox", "precision"] == 1.0 and report.at["cat", "recall"] == 0.5
    assert report["support"].tolist() == [2, 2, 2, 6, 6]


def test_absent_class_gives_zeros_without_warnings() -> None:
    # "fox" never occurs in y_true nor in the predictions.
    ev = Evaluation(["cat", "dog", "fox"], [0, 1, 1], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = ev.report()
        summary = ev.summary()
        precision, recall, _ = ev.pr_curve(2)
        assert ev.average_precision(2) == 0.0
    assert report.loc["fox", ["precision", "recall", "f1", "support"]].tolist() == [0, 0, 0, 0]
    assert summary["per_class"]["fox"]["support"] == 0
    assert np.all(np.isfinite(precision)) and np.all(np.isfinite(recall))


def test_pr_curve_endpoints_and_sklearn(binary: Evaluation) -> None:
    precision, recall, thresholds = binary.pr_curve(1)
    ref = precision_recall_curve(Y2, POS)
    for ours, theirs in zip((precision, recall, thresholds), ref):
        np.testing.assert_allclose(ours, theirs)
    assert (precision[-1], recall[-1]) == (1.0, 0.0)  # sklearn's closing point
    assert recall[0] == 1.0
    assert 0 < binary.average_precision(1) <= 1


def test_at_threshold_counts(binary: Evaluation) -> None:
    # scores >= 0.55: 0.9 0.6 0.7 0.55 -> tp 2 (0.9, 0.6), fp 2 (0.7, 0.55), fn 1 (0.4), tn 1 (0.2)
    got = binary.at_threshold(1, 0.55)
    assert {k: got[k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 2, "fp": 2, "fn": 1, "tn": 1}
    assert got["precision"] == pytest.approx(0.5) and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    nothing = binary.at_threshold(1, 1.5)
    assert nothing["tp"] + nothing["fp"] == 0 and nothing["precision"] == 0.0 and nothing["f1"] == 0.0


def test_binary_threshold_moves_decisions(binary: Evaluation) -> None:
    np.testing.assert_array_equal(binary.predictions(), [1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(binary.predictions(0.65), [1, 0, 0, 0, 1, 0])
    assert binary.accuracy(0.65) == pytest.approx(3 / 6)
    np.testing.assert_array_equal(binary.confusion(0.65), [[2, 1], [2, 1]])
    flipped = Evaluation(binary.classes, Y2, binary.scores, positive_class=0)
    np.testing.assert_array_equal(flipped.predictions(0.5), [1, 1, 0, 0, 1, 1])  # class 0 when its score >= .5


def test_threshold_rejected_for_multiclass(multi: Evaluation) -> None:
    with pytest.raises(ValueError, match="two classes only"):
        multi.predictions(0.5)
    with pytest.raises(ValueError, match="two classes only"):
        Evaluation(["a", "b", "c"], Y3, SCORES3, positive_class=1)


def test_worst_errors_binary_kinds_and_order(binary: Evaluation) -> None:
    worst = binary.worst_errors(k=1)
    assert list(worst.columns) == ["index", "path", "true", "predicted", "score", "true_score", "kind"]
    # false positives: 0.7 (img 4) and 0.55 (img 5); false negative: 0.4 -> predicted "other" with 0.6.
    assert worst["kind"].tolist() == ["false positive", "false negative"]
    assert worst["path"].tolist() == ["f4.jpg", "f2.jpg"]
    assert worst["score"].tolist() == pytest.approx([0.7, 0.6])
    assert worst["true_score"].tolist() == pytest.approx([0.3, 0.4])
    assert len(binary.worst_errors(k=5)) == 3
    assert worst["score"].is_monotonic_decreasing


def test_worst_errors_multiclass_pairs(multi: Evaluation) -> None:
    worst = multi.worst_errors()
    assert worst["kind"].tolist() == ["dog → cat", "cat → dog"]
    assert worst["index"].tolist() == [4, 2]
    assert worst["score"].tolist() == pytest.approx([0.9, 0.6])


def test_no_errors_gives_empty_frame() -> None:
    ev = Evaluation(["a", "b"], [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    assert ev.worst_errors().empty
    assert ev.worst_errors()["path"].tolist() == []


def test_cell_indices(multi: Evaluation, binary: Evaluation) -> None:
    assert multi.cell(0, 1) == [2]
    assert multi.cell(2, 2) == [3, 5]
    assert multi.cell(2, 0) == []
    assert binary.cell(0, 1, threshold=0.65) == [4]
    cm = multi.confusion()
    assert all(len(multi.cell(t, p)) == cm[t, p] for t in range(3) for p in range(3))


def test_summary_is_json_and_consistent(multi: Evaluation) -> None:
    summary = json.loads(json.dumps(multi.summary()))
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["top_k_accuracy"] == pytest.approx([4 / 6, 1.0, 1.0])
    assert summary["f1_weighted"] == pytest.approx(f1_score(Y3, SCORES3.argmax(1), average="weighted"))
    assert summary["f1_macro"] == pytest.approx(f1_score(Y3, SCORES3.argmax(1), average="macro"))
    assert summary["confusion"] == multi.confusion().tolist()
    assert set(summary["per_class"]) == {"cat", "dog", "fox"}


def test_json_round_trip(binary: Evaluation) -> None:
    noisy = Evaluation(binary.classes, binary.y_true, binary.scores + 1e-9, paths=binary.paths)
    back = Evaluation.from_json(json.loads(json.dumps(noisy.to_json())))
    assert back.classes == noisy.classes and back.paths == noisy.paths and back.positive_class == 1
    np.testing.assert_array_equal(back.y_true, noisy.y_true)
    np.testing.assert_allclose(back.scores, noisy.scores, atol=1e-6)
    assert back.summary()["confusion"] == noisy.summary()["confusion"]
    assert back.summary()["f1_weighted"] == pytest.approx(noisy.summary()["f1_weighted"])


def test_scores_need_not_sum_to_one() -> None:
    ev = Evaluation(["a", "b", "c"], [0, 2], [[3.0, 1.0, 0.5], [0.2, 0.1, 0.25]])
    assert ev.accuracy() == 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(classes=["a", "b"], y_true=[], scores=np.zeros((0, 2))), "zero examples"),
    (dict(classes=["a", "b"], y_true=[0, 1], scores=np.zeros((2, 3))), "shape"),
    (dict(classes=["a", "b"], y_true=[0, 2], scores=np.zeros((2, 2))), "outside"),
    (dict(classes=["a"], y_true=[0], scores=np.ones((1, 1))), "two classes"),
    (dict(classes=["a", "b"], y_true=[0], scores=np.ones((1, 2)), paths=["x", "y"]), "paths"),
])
def test_invalid_input_is_named(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Evaluation(**bad)
