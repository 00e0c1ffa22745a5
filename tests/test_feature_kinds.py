"""The svm / logreg trial kinds: real sweeps on SQLite over frozen pooled features, and their saved
Keras models giving scikit-learn's numbers."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from core.inference.model_card import load_model
from core.runs.store import RunStore
from core.search.refit import finalize
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec, TrialParams
from core.training.features_kinds import features_head, fit_features
from core.training.plan import SweepData


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")


def kinds_spec(dataset, name: str, search: dict) -> SweepSpec:
    return SweepSpec.from_dict({
        "name": name, "folds": 2, "data": {"dataset": str(dataset), "test_fraction": 0.25},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32},
        "search": search})


def test_svm_and_logreg_trials_store_a_full_evaluation_record(tiny_dataset, store):
    spec = kinds_spec(tiny_dataset, "kinds", {"method": "grid", "space": {"kind": ["svm", "logreg"]}})
    store.create_sweep(spec)
    assert run_worker(store, "kinds") == 2
    data = SweepData(spec)
    for trial in store.trials("kinds"):
        assert trial.state.name == "COMPLETE", trial.error
        folds = trial.result.folds
        assert [f.fold for f in folds] == [0, 1] and all(f.best_epoch == 0 and f.curves == {} for f in folds)
        assert trial.value == pytest.approx(np.mean([1 - f.accuracy for f in folds]))
        assert trial.result.validation_confusion().sum() == len(data.train_rows)   # every train image once
        assert all(f.summary["per_class"] and len(f.summary["top_k_accuracy"]) == 3 for f in folds)
        oof = store.oof("kinds", trial.number)
        assert oof.scores.shape == (len(data.train_rows), 3) and sorted(set(oof.folds)) == [0, 1]
        assert np.allclose(oof.scores.sum(axis=1), 1.0, atol=1e-5)
        assert all(str(tiny_dataset) in p for p in oof.paths)
        assert trial.live.epochs == 0 and trial.live.folds == 2      # the live panel: folds, no epochs


def test_the_final_svm_model_is_a_keras_model_predict_can_load(tiny_dataset, store):
    spec = kinds_spec(tiny_dataset, "svm-final", {"method": "grid", "space": {"svm_kernel": ["rbf"]}})
    spec.params.kind = "svm"
    store.create_sweep(spec)
    run_worker(store, "svm-final")
    final = finalize(store, "svm-final")
    assert final.epochs == 0 and final.params["kind"] == "svm" and final.variants == []
    loaded = load_model(final.model_path)
    assert loaded.card["kind"] == "svm" and loaded.image_size == 32
    data = SweepData(spec).trial_data(32)
    scores = loaded.model.predict_on_batch(data.images[data.test_rows].astype(np.float32))
    assert np.allclose(scores, final.test["scores"], atol=1e-4)      # the refit's own test scores


def feature_problem(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(classes)
    labels = np.repeat(np.arange(classes), 30)
    centres = rng.normal(0, 1.5, size=(classes, 24))
    return centres[labels] + rng.normal(0, 1, size=(len(labels), 24)) * 3 + 5, labels


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("kind, kernel, gamma", [("logreg", "rbf", 0.0), ("svm", "linear", 0.0),
                                                 ("svm", "rbf", 0.0), ("svm", "rbf", 0.05),
                                                 ("svm", "poly", 0.0)])
def test_the_saved_model_gives_the_pipelines_scores(kind, kernel, gamma, classes, tmp_path):
    features, labels = feature_problem(classes)
    features = features.astype(np.float32).astype(np.float64)      # as the activation cache holds them
    params = TrialParams(kind=kind, svm_kernel=kernel, svm_gamma=gamma, svm_c=3.0, logreg_c=0.5)
    fitted = fit_features(params, features[::2], labels[::2], classes)
    expected = fitted.scores(features[1::2])
    assert np.array_equal(expected.argmax(axis=1), fitted.estimator.predict(fitted.scaler.transform(features[1::2])))
    path = tmp_path / "head.keras"
    features_head(fitted, features.shape[1]).save(path)
    model = keras.saving.load_model(path)                     # built-in layers only: nothing to register
    scores = np.asarray(model.predict_on_batch(features[1::2].astype(np.float32)))
    assert scores.shape == (len(expected), classes)
    assert np.abs(scores - expected).max() < 1e-5
