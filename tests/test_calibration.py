"""Temperature scaling and the expected calibration error on small synthetic logits whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from core.results.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability,
    softmax,
)


def _overconfident(n: int = 4000, classes: int = 4, true_t: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z / true_t) while the model reports softmax(z): overconfident by a known factor."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, size=(n, classes))
    truth = softmax(logits, true_t)
    labels = np.array([rng.choice(classes, p=p) for p in truth])
    return logits, labels


def test_temperature_recovers_the_overconfidence_factor() -> None:
    logits, labels = _overconfident()
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.1)


def test_scaling_lowers_the_calibration_error_and_keeps_every_decision() -> None:
    logits, labels = _overconfident(seed=1)
    t = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits, t)
    assert expected_calibration_error(after, labels) < expected_calibration_error(before, labels) / 2
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))


def test_ece_by_hand() -> None:
    # Two bins hold images: confidence 0.9 (3 of 4 right: gap 0.15) and 0.6 (1 of 2 right: gap 0.1).
    p = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 0])
    assert expected_calibration_error(p, labels, bins=10) == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.1)
    table = reliability(p, labels, bins=10)
    assert table.counts.sum() == 6 and table.counts[8] == 4 and table.counts[5] == 2
    assert table.accuracy[8] == pytest.approx(0.75) and table.confidence[5] == pytest.approx(0.6)


def test_a_calibrated_model_is_left_near_one() -> None:
    logits, labels = _overconfident(true_t=1.0, seed=2)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_ensemble_probabilities_take_their_log_as_logits() -> None:
    from core.results.calibration import logits_of
    p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(softmax(logits_of(p)), p, atol=1e-6)


def test_a_final_models_calibration_is_fitted_on_out_of_fold_scores_and_shown_on_test() -> None:
    """An overconfident model's probabilities (no logits): the temperature comes from its out-of-fold
    probabilities, the test split is shown before and after, and after is better."""
    from core.results.calibration import calibrate
    oof_logits, oof_labels = _overconfident(seed=3)
    test_logits, test_labels = _overconfident(n=1500, seed=4)
    report = calibrate(softmax(oof_logits), oof_labels, softmax(test_logits), test_labels)
    assert report.temperature == pytest.approx(3.0, rel=0.1)
    assert report.after.ece < report.before.ece / 2
    assert report.before.ece == pytest.approx(expected_calibration_error(softmax(test_logits), test_labels))
