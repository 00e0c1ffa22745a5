"""Which images look like none of a sweep's classes: the open-set detector of a finished sweep.

Fitted for free from what the sweep kept: its best trial's out-of-fold scores (every training image scored by
the fold model that never saw it) and the frozen backbone's pooled features of the same images (the
activation cache). The scores are probabilities, so energy is left out and the logit detectors take no part
in the held-out comparison (`core.quality.open_set`); a feature detector is kept. New images are scored on the
same frozen features (`image_features`), whatever the final model fine-tuned.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from core.quality.open_set import ACCEPT, FoldOutputs, OpenSetDetector, fit_open_set
from core.quality.suspects import scored_trials
from core.results.calibration import logits_of
from core.runs.store import RunStore
from core.spec.sweep import TrialParams


def frozen(params: TrialParams) -> TrialParams:
    """The trial's backbone, frozen, un-augmented: what the pooled features come from."""
    return dataclasses.replace(params, trainable_layers=0, augmentation="none")


def sweep_detector(store: RunStore, sweep: str, accept: float = ACCEPT) -> tuple[OpenSetDetector, TrialParams]:
    """The detector of the sweep's best trial with out-of-fold scores, and the params its features need."""
    from core.training.plan import SweepData
    trial, oof = scored_trials(store, sweep)[0]
    params = frozen(store.spec(sweep).trial_params(trial.params))
    data = SweepData.of_sweep(store, sweep)
    features = data.runner(params).pooled_features(params)
    row_of = {path: row for row, path in enumerate(data.dataset.paths)}
    rows = [row_of[path] for path in oof.paths]
    outputs = FoldOutputs(features=features[rows], logits=logits_of(oof.scores), labels=oof.labels,
                          folds=oof.folds, true_logits=False)
    return fit_open_set(outputs, accept=accept), params


def image_features(params: TrialParams, images: np.ndarray, classes: int = 2, seed: int = 0) -> np.ndarray:
    """Pooled features (N, D) of uint8 images (N, S, S, 3) from the frozen backbone of `params`, as cached
    for a sweep (the head, `classes` wide, is not used)."""
    from core.models.classifier import build_classifier
    from core.training.trial import predict_scores
    bottom = build_classifier(frozen(params), classes, seed=seed).bottom_model()
    return predict_scores(bottom, np.asarray(images), np.arange(len(images)))


def refusal_line(detector: OpenSetDetector, score: float) -> str:
    """What Predict and the CLI say instead of a confident class."""
    return f"looks like none of the classes (score {score:.3f}, threshold {detector.threshold:.3f})"
