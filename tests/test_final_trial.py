"""Which trial the final model comes from: an SVM's lead on CV error within the noise does not displace a
network whose fold models make the final ensemble; a lead beyond it does."""
from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution

from core.runs.evaluation import Evaluation
from core.runs.records import FinalModel, FoldResult, OutOfFold, TrialResult
from core.runs.store import RunStore
from core.search.ensemble_members import ENSEMBLE_TRIALS, ensemble_candidates
from core.search.final_trial import final_trial, paired_lead
from core.spec.sweep import SweepSpec

CLASSES = ["a", "b", "c"]
IMAGES = 60
LABELS = np.arange(IMAGES) % len(CLASSES)
FOLDS = np.arange(IMAGES) % 2


def oof(wrong: set[int]) -> OutOfFold:
    """Out-of-fold scores right on every image but those in `wrong` (called the next class)."""
    predicted = np.array([(y + 1) % len(CLASSES) if i in wrong else y for i, y in enumerate(LABELS)])
    scores = np.where(np.eye(len(CLASSES))[predicted] > 0, 0.8, 0.1)
    return OutOfFold(paths=[f"{i}.jpg" for i in range(IMAGES)], labels=LABELS, classes=CLASSES, folds=FOLDS,
                     scores=scores)


def result(scores: OutOfFold) -> TrialResult:
    folds = []
    for k in (0, 1):
        held = Evaluation(CLASSES, LABELS[FOLDS == k], scores.scores[FOLDS == k])
        folds.append(FoldResult(fold=k, val_error=1 - held.accuracy(), best_epoch=1, curves={},
                                summary=held.summary()))
    return TrialResult(folds=folds, cache="off", cut="", duration_s=1.0, oof=scores)


def sweep_of(tmp_path, network_wrong: set[int], svm_wrong: set[int], ensemble: bool = True,
             refit: bool = False) -> RunStore:
    """A sweep whose network trial (0) and svm trial (1) finished with these out-of-fold mistakes."""
    return sweep_with(tmp_path, [("network", network_wrong), ("svm", svm_wrong)], ensemble, refit)


def sweep_with(tmp_path, trials: list[tuple[str, set[int]]], ensemble: bool = True,
               refit: bool = False) -> RunStore:
    """A sweep whose trials, numbered in order, are of these kinds and finished with these mistakes."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "s", "data": {"dataset": "d"}, "folds": 2, "ensemble": ensemble,
                                            "refit": refit, "search": {"space": {"kind": ["network", "svm"]}}}))
    study = store.study("s")
    for kind, wrong in trials:
        study.enqueue_trial({"kind": kind})
        trial = study.ask({"kind": CategoricalDistribution(["network", "svm"])})
        done = result(oof(wrong))
        store.set_result(trial, done)
        study.tell(trial, done.value)
    return store


def test_the_paired_lead_and_its_standard_error():
    lead, noise = paired_lead(oof({1, 2}), oof({1, 2, 3, 4, 5, 6}))
    assert lead == pytest.approx(4 / IMAGES)
    differences = np.zeros(IMAGES)
    differences[[3, 4, 5, 6]] = 1
    assert noise == pytest.approx(differences.std(ddof=1) / np.sqrt(IMAGES))


def test_an_svm_ahead_within_the_noise_leaves_the_final_model_to_the_network(tmp_path):
    store = sweep_of(tmp_path, network_wrong={0, 1, 2, 3, 4, 5}, svm_wrong={6, 7, 8, 9})    # 2 images ahead
    assert [t.number for t in sorted(store.trials("s"), key=lambda t: t.value)] == [1, 0]
    trial, why = final_trial(store, "s")
    assert trial.number == 0
    assert "trial 1 (svm)" in why and "2 of 60 images ahead" in why


def test_an_svm_ahead_beyond_the_noise_makes_the_final_model(tmp_path):
    store = sweep_of(tmp_path, network_wrong=set(range(12)), svm_wrong={12})                 # 11 images ahead
    trial, why = final_trial(store, "s")
    assert (trial.number, why) == (1, "")


@pytest.mark.parametrize("ensemble, refit", [(False, True), (True, True)])
def test_unless_the_fold_ensemble_is_the_final_model_the_lowest_cv_error_makes_it(tmp_path, ensemble, refit):
    store = sweep_of(tmp_path, network_wrong={0, 1, 2, 3, 4, 5}, svm_wrong={6, 7, 8, 9}, ensemble=ensemble,
                     refit=refit)
    trial, why = final_trial(store, "s")
    assert (trial.number, why) == (1, "")


def test_why_is_kept_with_the_final_model():
    final = FinalModel(trial=0, cv_error=0.1, params={}, epochs=0, model_path="m.keras", test={}, train={},
                       test_accuracy=0.9, created="", why="trial 1 (svm) ...")
    assert FinalModel.from_json(final.to_json()) == final
    assert FinalModel.from_json({k: v for k, v in final.to_json().items() if k != "why"}).why == ""


def test_an_svm_ranked_first_takes_no_networks_place_among_the_ensembles_candidates(tmp_path):
    store = sweep_with(tmp_path, [("network", set(range(8))), ("network", set(range(6))), ("svm", set(range(5))),
                                  ("network", set(range(10))), ("network", set(range(12)))])
    assert [t.number for t in ensemble_candidates(store, "s")] == [1, 0, 3] and ENSEMBLE_TRIALS == 3
    assert final_trial(store, "s")[0].number == 1       # within the noise: the network the ensemble starts from
