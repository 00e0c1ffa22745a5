"""Open-set detection on small synthetic features and logits whose answers are known: every detector
scores far-away points above the training distribution, the threshold accepts the chosen share of new
in-distribution points, and the detector survives JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.quality.open_set import METHODS, FoldOutputs, OpenSetDetector, fit_open_set, unknown_scores

CLASSES, DIM, FOLDS = 4, 6, 3


def _blobs(n: int, seed: int, shift: float = 0.0):
    """`n` points per class around four class centres; `shift` moves every point far away from all of them. The logits come
    from a fixed linear model, so far points get large logits (an overconfident softmax) as in real nets."""
    rng = np.random.default_rng(seed)
    centres = np.eye(CLASSES, DIM) * 4.0
    labels = np.repeat(np.arange(CLASSES), n)
    features = centres[labels] + rng.normal(size=(len(labels), DIM))
    features[:, CLASSES:] += shift      # away from every class, along dimensions no class uses
    logits = features @ np.eye(DIM, CLASSES) * 2.0
    return features, logits, labels


def _training(seed: int = 0, per_class: int = 90) -> FoldOutputs:
    features, logits, labels = _blobs(per_class, seed)
    folds = np.random.default_rng(seed).permutation(np.arange(len(labels)) % FOLDS)
    return FoldOutputs(features=features, logits=logits, labels=labels, folds=folds)


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside])


def test_energy_and_msp_by_hand() -> None:
    logits = np.array([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(unknown_scores("energy", {}, logits=logits), [-np.log(2), -np.log(np.exp(10) + 1)])
    np.testing.assert_allclose(unknown_scores("msp", {}, logits=logits), [0.5, 1 - 1 / (1 + np.exp(-10))])


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_feature_detectors_score_far_points_above_the_training_data(method: str) -> None:
    detector = fit_open_set(_training(), methods=(method,))
    features, logits, _ = _blobs(30, seed=5)
    far_features, far_logits, _ = _blobs(30, seed=6, shift=10.0)
    inside = detector.scores(logits=logits, features=features)
    outside = detector.scores(logits=far_logits, features=far_features)
    assert _auroc(inside, outside) > 0.95


def test_mahalanobis_distance_by_hand() -> None:
    """Two classes at -1 and +1 on one axis, unit spread: a point at 3 is 2 from the nearer mean."""
    features = np.array([[-2.0], [0.0], [0.0], [2.0]])
    labels = np.array([0, 0, 1, 1])
    detector = fit_open_set(FoldOutputs(features=features, logits=np.zeros((4, 2)), labels=labels,
                                        folds=np.array([0, 1, 0, 1])), methods=("mahalanobis",))
    shared_variance = 1.0   # class-centred points -1, 1, -1, 1: variance 1, nothing to shrink in one dimension
    assert detector.scores(features=np.array([[3.0]]))[0] == pytest.approx(4.0 / shared_variance)


def test_the_threshold_accepts_the_chosen_share_of_new_in_distribution_images() -> None:
    detector = fit_open_set(_training(per_class=400), methods=("knn",), accept=0.9)
    features, logits, _ = _blobs(500, seed=7)
    accepted = ~detector.refuses(logits=logits, features=features)
    assert accepted.mean() == pytest.approx(0.9, abs=0.04)


def test_the_best_detector_on_held_out_classes_is_kept() -> None:
    """Logits that say nothing about where a point lies (the same for every image) leave msp and energy
    blind: a feature detector must win the held-out-class comparison."""
    training = _training()
    blind = FoldOutputs(features=training.features, logits=np.zeros_like(training.logits),
                        labels=training.labels, folds=training.folds,
                        held_out_logits={c: np.zeros((len(training.labels), CLASSES - 1)) for c in range(CLASSES)})
    detector = fit_open_set(blind)
    assert set(detector.held_out_auroc) == set(METHODS)
    assert detector.method in ("mahalanobis", "knn")
    assert detector.held_out_auroc[detector.method] == max(detector.held_out_auroc.values())
    assert detector.held_out_auroc["msp"] == pytest.approx(0.5)


def test_logit_detectors_need_logits_from_heads_that_never_saw_the_held_out_class() -> None:
    """The head saw every class: dropping a class's logit afterwards flatters msp and energy (its images still
    push the other logits down), so without logits of heads fitted without each class they are not compared."""
    training = _training()
    detector = fit_open_set(training)
    assert np.isnan(detector.held_out_auroc["msp"]) and np.isnan(detector.held_out_auroc["energy"])
    assert detector.method in ("mahalanobis", "knn")
    honest = FoldOutputs(features=training.features, logits=training.logits, labels=training.labels,
                         folds=training.folds, held_out_logits={c: np.delete(training.logits, c, axis=1)
                                                                for c in range(CLASSES)})
    assert not np.isnan(fit_open_set(honest).held_out_auroc["msp"])


def test_a_missing_held_out_class_is_an_error() -> None:
    training = _training()
    partial = FoldOutputs(features=training.features, logits=training.logits, labels=training.labels,
                          folds=training.folds, held_out_logits={0: np.delete(training.logits, 0, axis=1)})
    with pytest.raises(ValueError, match="held-out logits for every class"):
        fit_open_set(partial)


def test_energy_is_left_out_without_real_logits() -> None:
    training = _training()
    probabilities_only = FoldOutputs(features=training.features, logits=np.log(np.full((len(training.labels),
                                     CLASSES), 0.25)), labels=training.labels, folds=training.folds, true_logits=False)
    assert "energy" not in fit_open_set(probabilities_only).held_out_auroc


@pytest.mark.parametrize("method", METHODS)
def test_a_detector_survives_json(method: str) -> None:
    detector = fit_open_set(_training(), methods=(method,))
    again = OpenSetDetector.from_json(json.loads(json.dumps(detector.to_json())))
    features, logits, _ = _blobs(20, seed=9, shift=1.5)
    np.testing.assert_allclose(again.scores(logits=logits, features=features),
                               detector.scores(logits=logits, features=features), rtol=1e-5)
    np.testing.assert_array_equal(again.refuses(logits=logits, features=features),
                                  detector.refuses(logits=logits, features=features))
    assert (again.method, again.threshold, again.accept) == (detector.method, detector.threshold, detector.accept)


def test_features_are_required_by_a_feature_detector() -> None:
    detector = fit_open_set(_training(), methods=("knn",))
    with pytest.raises(ValueError, match="needs the pooled features"):
        detector.scores(logits=np.zeros((1, CLASSES)))
