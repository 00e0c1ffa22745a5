"""Are the probabilities right as often as they say? Temperature scaling and the expected calibration error.

Temperature scaling (Guo et al., 2017) divides the logits by one number T fitted to minimise the
log-loss on images the model never saw: K-fold CV's out-of-fold logits, which every sweep has for
free. One number cannot change a decision (the argmax is the same), only how sure it sounds. For a
fold ensemble the logits are the log of its averaged probabilities (`logits_of`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _softmax

BINS = 15
LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
TINY = 1e-12


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities (n, C) of logits scaled by 1 / temperature."""
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Logits that give back `probabilities` under softmax (up to a constant per row): how an ensemble's
    averaged output, which has no logits of its own, is scaled."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), TINY, None))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean negative log-likelihood of `labels` under softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    rows, labels = np.arange(len(logits)), np.asarray(labels, dtype=int)

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(logits / np.exp(log_t), axis=1)[rows, labels]))

    best = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


@dataclass(frozen=True)
class Reliability:
    """Images binned by their top probability: how sure the model was and how often it was right, per bin."""

    edges: np.ndarray        # (bins + 1,) bin edges over 0..1
    confidence: np.ndarray   # (bins,) mean top probability in the bin (NaN when empty)
    accuracy: np.ndarray     # (bins,) share right in the bin (NaN when empty)
    counts: np.ndarray       # (bins,) images in the bin

    @property
    def ece(self) -> float:
        """The expected calibration error: the bins' |accuracy - confidence|, weighted by their images."""
        held = self.counts > 0
        gaps = np.abs(self.accuracy[held] - self.confidence[held])
        return float(np.sum(gaps * self.counts[held]) / self.counts.sum())


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> Reliability:
    """The reliability table of `probabilities` (n, C) against the true `labels`, in equal-width bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("a reliability table needs images; there are none")
    confidence, right = p.max(axis=1), p.argmax(axis=1) == np.asarray(labels, dtype=int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / counts
        accuracy = np.bincount(which, right.astype(float), minlength=bins) / counts
    return Reliability(edges=edges, confidence=mean_confidence, accuracy=accuracy, counts=counts)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE of `probabilities` against `labels` (0: every bin right exactly as often as it claims)."""
    return reliability(probabilities, labels, bins).ece


@dataclass(frozen=True)
class Calibration:
    """A model's temperature (fitted out of fold) and the test split's reliability before and after it."""

    temperature: float
    before: Reliability
    after: Reliability


def calibrate(oof_probabilities: np.ndarray, oof_labels: np.ndarray, test_probabilities: np.ndarray,
              test_labels: np.ndarray) -> Calibration:
    """Temperature scaling of a model that outputs probabilities (a fold ensemble's average included): fitted
    on the out-of-fold probabilities' logs, shown on the test split."""
    temperature = fit_temperature(logits_of(oof_probabilities), oof_labels)
    return Calibration(temperature=temperature, before=reliability(test_probabilities, test_labels),
                       after=reliability(softmax(logits_of(test_probabilities), temperature), test_labels))
