"""Which finished network trials join the best one's fold ensemble: greedy forward selection on out-of-fold
scores (Caruana et al. 2004, as AutoGluon's weighted ensemble does), among trials whose fold models share
one input (same backbone, image size and folds).

The trials have already paid for their fold models, so a second configuration in the final average costs
predictions, not training. A partner joins only when the average's out-of-fold predictions are no less
accurate and better calibrated (lower log loss) than without it: judged on the training images, each scored
by a fold model that never saw it, never on the test split.
"""
from __future__ import annotations

import numpy as np

from core.runs.artifacts import has_fold_models
from core.runs.records import TrialRecord, ranked
from core.runs.store import RunStore
from core.spec.sweep import SweepSpec, TrialParams
from core.training.kinds import keeps_fold_models

ENSEMBLE_TRIALS = 3
"""The best trial and at most two partners; the sweep keeps this many trials' fold models
(`ensemble_candidates`)."""


def with_fold_models(spec: SweepSpec, trials: list[TrialRecord]) -> list[TrialRecord]:
    """The complete trials of a kind whose fold models an ensemble averages (not svm / logreg), best first."""
    return [t for t in ranked(trials) if keeps_fold_models(spec.trial_params(t.params))]


def ensemble_candidates(store: RunStore, name: str) -> list[TrialRecord]:
    """The `ENSEMBLE_TRIALS` best trials `with_fold_models`: the ones whose fold models the sweep keeps. An SVM
    ranked among the best keeps none, so it takes no network's place."""
    return with_fold_models(store.spec(name), store.trials(name))[:ENSEMBLE_TRIALS]


def _error(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores.argmax(axis=1) != labels))


def _log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(scores[np.arange(len(labels)), labels], 1e-7, 1.0))))


def select_members(oofs: list[np.ndarray], labels: np.ndarray) -> list[int]:
    """Indexes into `oofs` (out-of-fold probabilities, best trial first) of the trials the average keeps:
    the first, then each next one whose addition keeps the error and lowers the log loss."""
    chosen = [0]
    for candidate in range(1, len(oofs)):
        now = np.mean([oofs[i] for i in chosen], axis=0)
        joined = np.mean([oofs[i] for i in (*chosen, candidate)], axis=0)
        if _error(joined, labels) <= _error(now, labels) and _log_loss(joined, labels) < _log_loss(now, labels):
            chosen.append(candidate)
    return chosen


def ensemble_members(store: RunStore, name: str, best: TrialRecord) -> list[TrialRecord]:
    """The trials whose fold models the final ensemble averages: `best` first, then the partners
    `select_members` accepts among the `ensemble_candidates` that kept fold models on the same input and
    out-of-fold scores on the same images."""
    spec = store.spec(name)
    shape = _input(spec.trial_params(best.params))
    base = store.oof(name, best.number)
    if base is None:
        return [best]
    candidates, oofs = [best], [base.scores]
    for trial in ensemble_candidates(store, name):
        params = spec.trial_params(trial.params)
        if trial.number == best.number or _input(params) != shape:
            continue
        oof = store.oof(name, trial.number)
        if (oof is None or oof.paths != base.paths
                or not has_fold_models(store.fold_models_dir(name, trial.number), spec.folds)):
            continue
        candidates.append(trial)
        oofs.append(oof.scores)
    return [candidates[i] for i in select_members(oofs, base.labels)]


def _input(params: TrialParams) -> tuple[str, int, str]:
    """What fold models must share to be averaged in one Keras model: one backbone below, one image size."""
    return params.backbone, params.image_size, params.weights
