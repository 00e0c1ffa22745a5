"""The final ensemble across configurations: which trials join the best one (greedy on out-of-fold scores), and
their fold models averaged in one Keras model though they train from different depths."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.inference.model_card import load_model
from core.runs.records import FinalModel, ModelVariant, ranked
from core.runs.store import RunStore
from core.search.ensemble_members import ENSEMBLE_TRIALS, select_members
from core.search.refit import fold_variants
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData


def one_hot(predicted: list[int], classes: int = 3, confidence: float = 0.8) -> np.ndarray:
    scores = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    scores[np.arange(len(predicted)), predicted] = confidence
    return scores


def test_a_trial_that_corrects_the_best_ones_mistakes_joins_and_one_that_adds_its_own_does_not():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    best = one_hot([0, 1, 2, 0, 1, 2, 1, 2], confidence=0.6)          # wrong on the last two
    helpful = one_hot([0, 1, 2, 0, 1, 2, 0, 1], confidence=0.55)     # right where the best is wrong
    harmful = one_hot([1, 2, 0, 1, 2, 2, 0, 1], confidence=0.9)      # confidently wrong on five
    assert select_members([best, helpful, harmful], labels) == [0, 1]
    assert select_members([best, harmful], labels) == [0]
    assert select_members([best], labels) == [0]


def test_an_equally_accurate_but_no_better_calibrated_trial_stays_out():
    labels = np.array([0, 1, 2, 0])
    best = one_hot([0, 1, 2, 0], confidence=0.9)
    assert select_members([best, one_hot([0, 1, 2, 0], confidence=0.4)], labels) == [0]


@pytest.fixture
def two_depths(tiny_dataset, tmp_path) -> tuple[RunStore, SweepSpec]:
    """A finished 2-fold sweep whose two trials train the top 1 and the top 3 backbone layers."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_dict({
        "name": "depths", "folds": 2, "ensemble": True, "refit": False,
        "data": {"dataset": str(tiny_dataset), "test_fraction": 0.25},
        "params": {"backbone": "efficientnet_lite0", "image_size": 32, "epochs": 2, "batch_size": 8,
                   "early_stopping": 0, "reduce_lr": 0, "head": "dense_dropout", "dense_units": 16},
        "search": {"method": "grid", "space": {"trainable_layers": [1, 3]}}})
    store.create_sweep(spec)
    run_worker(store, "depths")
    return store, spec


def test_fold_models_of_two_depths_average_in_one_model(two_depths):
    store, spec = two_depths
    members = ranked(store.trials("depths"))
    assert len(members) == 2 <= ENSEMBLE_TRIALS
    folds = {t.number: [load_model(p).model for p in sorted(store.fold_models_dir("depths", t.number)
                                                            .glob("*.keras"))] for t in members}
    data = SweepData(spec)
    params = spec.trial_params(members[0].params)
    variants = fold_variants(store, "depths", data, members, params, {}, lambda _: None)
    ensemble = load_model(store.model_file(variants[0].model_path)).model
    images = data.runner(params).data.images[:6].astype(np.float32)
    expected = np.mean([m.predict_on_batch(images) for t in members for m in folds[t.number]], axis=0)
    assert sum(layer.name.startswith("fold") and layer.name != "fold_average" for layer in ensemble.layers) == 4
    assert np.allclose(ensemble.predict_on_batch(images), expected, atol=1e-5)


def test_the_average_of_two_trials_out_of_fold_scores_stands_for_their_ensemble(two_depths):
    store, _ = two_depths
    first, second = (store.oof("depths", t.number) for t in store.trials("depths"))
    both = store.oof("depths", 0, 1)
    assert np.allclose(both.scores, (first.scores + second.scores) / 2) and both.paths == first.paths
    final = FinalModel(trial=1, cv_error=0.1, params={}, epochs=0, model_path="e.keras", test={}, train={},
                       test_accuracy=0.9, created="", variants=[ModelVariant("ensemble", "e.keras", {}, 0.9)],
                       chosen="ensemble", ensemble_trials=[1, 0])
    assert final.oof_trials() == [1, 0]              # the detector and temperature fit the ensemble's scores
    refit = dataclasses.replace(final, variants=[ModelVariant("single", "s.keras", {}, 0.9), *final.variants])
    assert refit.oof_trials() == [1]                 # with a refit, the one trial refit
    assert FinalModel.from_json(final.to_json()) == final
