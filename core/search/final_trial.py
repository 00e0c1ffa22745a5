"""Which trial the final model comes from: the lowest CV error, except that a kind that keeps no fold models
(svm / logreg: its final model is one fit) does not displace a network trial whose fold ensemble is the final
model (`ensemble: true`, `refit: false`), when its lead on out-of-fold error is within the noise.

Why: a network trial's CV error is that of its single fold models, while its final model is then their
average (and flip TTA). An SVM has no such ensemble. In flowers5's 60-per-class
regime (three seeds, 3 folds) the network's fold ensemble tested 2.0 to 2.5 points above the SVM's refit each
time, once where CV had ranked the SVM 2 images of 300 ahead. The noise is the paired difference of the
two trials' per-image correctness on the same out-of-fold images: the lead must exceed its standard error.
"""
from __future__ import annotations

import math

import numpy as np

from core.runs.records import OutOfFold, TrialRecord, ranked
from core.runs.store import RunStore
from core.search.ensemble_members import with_fold_models
from core.training.kinds import keeps_fold_models

STANDARD_ERRORS = 1.0
"""How many standard errors of the paired difference a features trial's lead must exceed."""


def final_trial(store: RunStore, name: str) -> tuple[TrialRecord, str] | None:
    """The trial the final model is made from, and why it is not the lowest CV error ("" when it is);
    None before any trial completed."""
    ranking = ranked(store.trials(name))
    if not ranking:
        return None
    spec = store.spec(name)
    best = ranking[0]
    if not spec.ensemble or spec.refit or keeps_fold_models(spec.trial_params(best.params)):
        return best, ""
    networks = with_fold_models(spec, ranking)
    if not networks:
        return best, ""
    network = networks[0]
    ahead, network_oof = store.oof(name, best.number), store.oof(name, network.number)
    if ahead is None or network_oof is None or ahead.paths != network_oof.paths:
        return best, ""
    lead, noise = paired_lead(ahead, network_oof)
    if lead > STANDARD_ERRORS * noise:
        return best, ""
    images = len(ahead.paths)
    return network, (f"trial {best.number} ({spec.trial_params(best.params).kind}) had the lowest CV error, "
                     f"{round(lead * images)} of {images} images ahead of trial {network.number}, within "
                     f"the noise ({noise * images:.1f} images); trial {network.number}'s final model "
                     "averages its fold models, which its CV error does not count")


def paired_lead(first: OutOfFold, second: OutOfFold) -> tuple[float, float]:
    """How much lower `first`'s out-of-fold error is than `second`'s on the same images, and that
    difference's standard error (of the per-image differences in correctness)."""
    difference = _correct(first) - _correct(second)
    if len(difference) < 2:
        return float(difference.mean()) if len(difference) else 0.0, math.inf
    return float(difference.mean()), float(difference.std(ddof=1) / math.sqrt(len(difference)))


def _correct(oof: OutOfFold) -> np.ndarray:
    return (oof.scores.argmax(axis=1) == oof.labels).astype(np.float64)
