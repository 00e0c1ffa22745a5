"""An evaluation: one model's scores on one split (true labels, class scores, file paths) with every metric
derived from it (accuracy and its 95% interval, top-k, confusion, per-class report, PR curves, worst errors).

A trial keeps each fold's `summary` (its accuracy and confusion, for the fold view); a final model keeps
its whole test and train evaluations, which the Results page's final-model views read. In the spirit of
fastai's `Interpretation`: keep the raw material and derive views from it on demand, so a new view never
needs the model again.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import (
    average_precision_score,
    classification_report,
    confusion_matrix,
    precision_recall_curve,
)

REPORT_AVERAGES = ("macro avg", "weighted avg")
JSON_DIGITS = 6


@contextmanager
def _quiet() -> Iterator[None]:
    """sklearn warns on every call for a class absent from y_true; we answer 0 by design, so say it once here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _require_examples(n: int) -> None:
    if n == 0:
        raise ValueError("cannot evaluate zero examples: the evaluation split is empty "
                         "(check the dataset split or the fold indices)")


@dataclass(eq=False)
class Evaluation:
    """True labels and softmax scores of one evaluated split; all metrics are pure methods over them.

    `positive_class` matters only for two classes (default 1): it is the class a binary threshold
    decides for. Scores need not sum to one per row (e.g. rounded or uncalibrated scores).
    """

    classes: list[str]
    y_true: np.ndarray
    scores: np.ndarray
    paths: list[str] | None = None
    positive_class: int | None = None

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        self.y_true = np.asarray(self.y_true, dtype=int).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=float)
        n, c = len(self.y_true), len(self.classes)
        _require_examples(n)
        if c < 2:
            raise ValueError(f"an evaluation needs at least two classes, got {self.classes}")
        if self.scores.shape != (n, c):
            raise ValueError(f"scores must have shape (examples, classes) = ({n}, {c}), got {self.scores.shape}")
        if self.y_true.min() < 0 or self.y_true.max() >= c:
            raise ValueError(f"y_true holds class indices outside 0..{c - 1}")
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"paths has {len(self.paths)} entries for {n} examples")
        if c == 2 and self.positive_class is None:
            self.positive_class = 1
        if self.positive_class is not None and (c != 2 or self.positive_class not in (0, 1)):
            raise ValueError(f"positive_class applies to two classes only (0 or 1); got {self.positive_class} "
                             f"with {c} classes")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return self.n_classes == 2

    def predictions(self, threshold: float | None = None) -> np.ndarray:
        """Argmax class; for two classes with a threshold, the positive class wherever its score >= threshold."""
        if threshold is None:
            return self.scores.argmax(axis=1)
        if not self.is_binary:
            raise ValueError(f"a decision threshold applies to two classes only; this evaluation has "
                             f"{self.n_classes}. Use threshold=None (argmax).")
        pos = self.positive_class
        return np.where(self.scores[:, pos] >= threshold, pos, 1 - pos)

    def accuracy(self, threshold: float | None = None) -> float:
        return float(np.mean(self.predictions(threshold) == self.y_true))

    def accuracy_interval(self) -> tuple[float, float]:
        """The accuracy's 95% Wilson interval: what so many images can say about it."""
        return wilson_interval(int(np.sum(self.predictions() == self.y_true)), len(self.y_true))

    def accuracy_text(self) -> str:
        """The accuracy with its interval and image count, as every page and printout shows it."""
        low, high = self.accuracy_interval()
        return f"{self.accuracy():.1%} (95% interval {100 * low:.1f}-{high:.1%}, {len(self.y_true)} images)"

    def top_k_accuracy(self, k: int) -> float:
        """Share of examples whose true class is among the k highest scores (ties: lower index first, as argmax)."""
        if not 1 <= k <= self.n_classes:
            raise ValueError(f"k must be between 1 and {self.n_classes}, got {k}")
        top = np.argsort(-self.scores, axis=1, kind="stable")[:, :k]
        return float(np.mean((top == self.y_true[:, None]).any(axis=1)))

    def confusion(self, threshold: float | None = None, normalize: bool = False) -> np.ndarray:
        """(C, C) counts, rows = true class, columns = predicted; `normalize` divides each row by its total."""
        return confusion_matrix(self.y_true, self.predictions(threshold), labels=range(self.n_classes),
                                normalize="true" if normalize else None)

    def report(self, threshold: float | None = None) -> pd.DataFrame:
        """sklearn's classification report as a frame: one row per class, then 'macro avg' and 'weighted avg'."""
        with _quiet():
            d = classification_report(self.y_true, self.predictions(threshold), labels=range(self.n_classes),
                                      target_names=self.classes, output_dict=True, zero_division=0)
        frame = pd.DataFrame({row: d[row] for row in [*self.classes, *REPORT_AVERAGES]}).T
        frame = frame.rename(columns={"f1-score": "f1"})
        return frame.astype({"support": int})

    def pr_curve(self, class_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One-vs-rest precision, recall and thresholds (sklearn's order: recall falls as the threshold rises)."""
        with _quiet():
            return precision_recall_curve(self.y_true == class_index, self.scores[:, class_index])

    def average_precision(self, class_index: int) -> float:
        """One-vs-rest average precision; 0 for a class absent from y_true."""
        with _quiet():
            return float(average_precision_score(self.y_true == class_index, self.scores[:, class_index]))

    def at_threshold(self, class_index: int, threshold: float) -> dict[str, float | int]:
        """One-vs-rest counts and precision/recall/F1 when `class_index` is predicted wherever its score >= threshold."""
        actual = self.y_true == class_index
        called = self.scores[:, class_index] >= threshold
        tp, fp = int(np.sum(actual & called)), int(np.sum(~actual & called))
        fn, tn = int(np.sum(actual & ~called)), int(np.sum(~actual & ~called))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
                "tp": tp, "fp": fp, "fn": fn, "tn": tn}

    def _error_kind(self, true: int, predicted: int) -> str:
        if self.is_binary:
            return "false positive" if predicted == self.positive_class else "false negative"
        return f"{self.classes[true]} → {self.classes[predicted]}"

    def worst_errors(self, k: int = 5, threshold: float | None = None) -> pd.DataFrame:
        """The k most confident mistakes of each kind (binary: false positives / negatives; else each true → predicted
        pair), most confident first: the images most worth a look for mislabels or confusing classes."""
        pred = self.predictions(threshold)
        wrong = np.flatnonzero(pred != self.y_true)
        rows = pd.DataFrame({
            "index": wrong,
            "path": [self.paths[i] for i in wrong] if self.paths is not None else [None] * len(wrong),
            "true": [self.classes[t] for t in self.y_true[wrong]],
            "predicted": [self.classes[p] for p in pred[wrong]],
            "score": self.scores[wrong, pred[wrong]],
            "true_score": self.scores[wrong, self.y_true[wrong]],
            "kind": [self._error_kind(t, p) for t, p in zip(self.y_true[wrong], pred[wrong])],
        })
        rows = rows.sort_values(["score", "index"], ascending=[False, True], kind="stable")
        return rows.groupby("kind", sort=False).head(k).reset_index(drop=True)

    def cell(self, true_index: int, pred_index: int, threshold: float | None = None) -> list[int]:
        """Indices of the examples in one confusion-matrix cell, for "click a cell, see those images"."""
        pred = self.predictions(threshold)
        return np.flatnonzero((self.y_true == true_index) & (pred == pred_index)).tolist()

    def summary(self) -> dict[str, Any]:
        """The JSON-able headline numbers the run store keeps per trial (argmax decisions).

        top_k_accuracy[k - 1] is the top-k accuracy for k = 1..min(5, C).
        """
        report = self.report()
        per_class = {
            name: {"precision": float(report.at[name, "precision"]), "recall": float(report.at[name, "recall"]),
                   "f1": float(report.at[name, "f1"]), "support": int(report.at[name, "support"]),
                   "average_precision": self.average_precision(i)}
            for i, name in enumerate(self.classes)
        }
        averages = {f"{metric}_{avg.split()[0]}": float(report.at[avg, metric])
                    for avg in REPORT_AVERAGES for metric in ("precision", "recall", "f1")}
        return {
            "n": len(self.y_true),
            "classes": list(self.classes),
            "accuracy": self.accuracy(),
            "accuracy_interval": list(self.accuracy_interval()),    # 95% Wilson
            "top_k_accuracy": [self.top_k_accuracy(k) for k in range(1, min(5, self.n_classes) + 1)],
            **averages,
            "per_class": per_class,
            "confusion": self.confusion().tolist(),
        }

    def to_json(self) -> dict[str, Any]:
        """Plain lists for the store; scores rounded to 6 digits."""
        return {
            "classes": list(self.classes),
            "y_true": self.y_true.tolist(),
            "scores": np.round(self.scores, JSON_DIGITS).tolist(),
            "paths": None if self.paths is None else list(self.paths),
            "positive_class": self.positive_class,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Evaluation:
        return cls(classes=d["classes"], y_true=np.asarray(d["y_true"], dtype=int),
                   scores=np.asarray(d["scores"], dtype=float), paths=d.get("paths"),
                   positive_class=d.get("positive_class"))


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of `correct` out of `n` images (scipy's binomtest): honest
    at the edges, where "100% on 32 images" still means at least 89% with 95% confidence."""
    if n <= 0:
        raise ValueError("an accuracy interval needs images; there are no images")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be between 0 and {n}, got {correct}")
    interval = binomtest(int(correct), int(n)).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)
