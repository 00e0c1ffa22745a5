"""The svm / logreg trial kinds: real sweeps on SQLite over frozen pooled features, and their saved
Keras models giving scikit-learn's numbers."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from apptest import APP
from sklearn.svm import SVC
from streamlit.testing.v1 import AppTest

from core.inference.model_card import load_model
from core.runs.store import RunStore
from core.search.refit import finalize, refit_epochs
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec, TrialParams
from core.training.features_kinds import features_head, fit_features, refit_features
from core.training.plan import SweepData


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")


@pytest.fixture
def predict_page(tmp_path, monkeypatch):
    """The Predict page's caption under an image, for a model file uploaded to it (the app, its own store)."""
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))

    def caption(model_path: str, image: Path) -> str:
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.switch_page("views/4_Predict.py").run()
        next(r for r in at.radio if r.label == "Model").set_value("Upload a .keras file").run()
        at.file_uploader(key="model_upload").upload("model.keras", Path(model_path).read_bytes(),
                                                    "application/zip").run()
        at.file_uploader(key="images").upload(image.name, image.read_bytes(), "image/jpeg").run()
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
        return next(c.value for c in at.caption if c.value.startswith("No heat map"))
    return caption


def kinds_spec(dataset, name: str, search: dict, use_cache: bool = True, **params) -> SweepSpec:
    return SweepSpec.from_dict({
        "name": name, "folds": 2, "use_cache": use_cache,
        "data": {"dataset": str(dataset), "test_fraction": 0.25},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32} | params,
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


@pytest.mark.slow          # a refit and a Predict page; the network-features test runs both fast
def test_the_final_svm_model_is_a_keras_model_predict_can_load(tiny_dataset, store, predict_page):
    spec = kinds_spec(tiny_dataset, "svm-final", {"method": "grid", "space": {"svm_kernel": ["rbf"]}})
    spec.params.kind = "svm"
    store.create_sweep(spec)
    run_worker(store, "svm-final")
    final = finalize(store, "svm-final")
    assert final.epochs == 0 and final.params["kind"] == "svm" and final.variants == []
    loaded = load_model(store.model_file(final.model_path))
    assert loaded.card["kind"] == "svm" and loaded.image_size == 32
    data = SweepData(spec).trial_data(32)
    scores = loaded.model.predict_on_batch(data.images[data.test_rows].astype(np.float32))
    assert np.allclose(scores, final.test["scores"], atol=1e-4)      # the refit's own test scores
    assert "svm on the backbone's pooled features" in predict_page(store.model_file(final.model_path),
                                                                    Path(data.paths[0]))


@pytest.mark.parametrize("use_cache, head, trainable_layers, head_layers", [
    (True, "dense_bn_l2", 0, {"head_dense_1", "head_bn_1", "head_dense_2", "head_bn_2"}),
    pytest.param(False, "dense_dropout", 3, {"head_dense", "head_dropout", "top_conv"},
                 marks=pytest.mark.slow)])          # images through trained backbone layers: 25 s
def test_an_svm_on_a_trained_networks_penultimate_features(tiny_dataset, store, use_cache, head,
                                                           trainable_layers, head_layers, predict_page):
    spec = kinds_spec(tiny_dataset, "net-svm", {"method": "grid", "space": {"svm_kernel": ["rbf"]}},
                      use_cache=use_cache, backbone="efficientnet_lite0", kind="svm", features_from="network",
                      head=head, trainable_layers=trainable_layers, epochs=2)
    store.create_sweep(spec)
    assert run_worker(store, "net-svm") == 1
    trial = store.trials("net-svm")[0]
    assert trial.state.name == "COMPLETE", trial.error
    assert trial.live.epochs == 2 and len(trial.live.curves) == 2            # live curves, as a network's
    data = SweepData(spec).trial_data(32)
    oof = store.oof("net-svm", trial.number)
    assert sorted(oof.paths) == sorted(data.paths[r] for r in data.train_rows)   # every train image once
    for fold in trial.result.folds:
        assert [len(fold.curves[key]) for key in ("loss", "val_loss", "val_accuracy")] == [2, 2, 2]
        assert fold.best_epoch in (0, 1)
        mine = oof.folds == fold.fold
        accuracy = np.mean(oof.scores[mine].argmax(axis=1) == oof.labels[mine])
        assert fold.val_error == pytest.approx(1.0 - accuracy)        # the SVM's error, not the network's
    assert trial.value == pytest.approx(np.mean([f.val_error for f in trial.result.folds]))

    final = finalize(store, "net-svm")
    assert final.epochs == refit_epochs(trial) and final.params["features_from"] == "network"
    model = keras.saving.load_model(store.model_file(final.model_path))   # built-in layers only
    assert head_layers | {"sk_standardise"} <= {layer.name for layer in model.layers}   # the trained net
    assert load_model(store.model_file(final.model_path)).card["kind"] == "svm"
    scores = np.asarray(model.predict_on_batch(data.images[data.test_rows].astype(np.float32)))
    assert np.abs(scores - np.asarray(final.test["scores"])).max() < 1e-5
    assert "svm on a trained network's penultimate features" in predict_page(store.model_file(final.model_path),
                                                                              Path(data.paths[0]))


@pytest.mark.parametrize("trainable_layers", [0, 3])
def test_the_features_are_the_trained_networks_penultimate_layer(tiny_dataset, trainable_layers):
    """With a linear head the penultimate layer is the pooled one: the frozen features when nothing of
    the backbone trains, other features when its last layers do."""
    spec = kinds_spec(tiny_dataset, "pen", {"method": "grid", "space": {}}, backbone="efficientnet_lite0",
                      kind="logreg", features_from="network", head="linear",
                      trainable_layers=trainable_layers, epochs=2, learning_rate=0.05)
    runner = SweepData(spec).runner(spec.params)
    rows = runner.data.test_rows
    frozen = runner.pooled_features(spec.params)[rows]
    model, _, _ = refit_features(runner, spec.params, epochs=2)
    penultimate = keras.Model(model.input, model.get_layer("sk_standardise").input)
    features = np.asarray(penultimate.predict_on_batch(runner.data.images[rows].astype(np.float32)))
    assert features.shape == frozen.shape
    assert np.allclose(features, frozen, atol=1e-4) == (trainable_layers == 0)


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


def test_features_that_never_vary_fit_as_scikit_learns_scale_gamma_does():
    """A network whose penultimate units all died gives every image the same features: gamma 'scale' is
    then 1, as in scikit-learn, not a division by zero that fails the trial."""
    features, labels = np.ones((12, 8)), np.arange(12) % 2
    fitted = fit_features(TrialParams(kind="svm"), features, labels, 2)
    reference = SVC(gamma="scale").fit(fitted.scaler.transform(features), labels)
    assert fitted.estimator.estimators_[0].gamma == reference._gamma
    assert fitted.scores(features).shape == (12, 2)


def test_the_results_page_shows_an_svm_trial_without_learning_curves(tiny_dataset, tmp_path, monkeypatch):
    """An svm trial has no epochs: its trial view says so instead of drawing (or failing on) empty curves."""
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tiny_dataset.parent))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    store = RunStore()
    store.create_sweep(kinds_spec(tiny_dataset, "svm-only", {"method": "grid", "space": {"svm_c": [1.0]}},
                                  kind="svm"))
    run_worker(store, "svm-only")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/3_Results.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("no learning curves" in c.value for c in at.caption)


def test_a_grid_over_kind_and_depth_fits_the_frozen_features_svm_once(tiny_dataset, store):
    """The svm on frozen features reads no trainable_layers: the grid's second svm point is not fitted again."""
    space = {"kind": ["network", "svm"], "trainable_layers": [0, 1]}
    spec = kinds_spec(tiny_dataset, "twins", {"method": "grid", "space": space}, epochs=1)
    store.create_sweep(spec)
    run_worker(store, "twins")
    trials = store.trials("twins")
    states = sorted((t.params["kind"], t.params["trainable_layers"], t.state.name) for t in trials)
    fitted_svm = [t for t in trials if t.params["kind"] == "svm" and t.state.name == "COMPLETE"]
    assert len(trials) == 4 and len(fitted_svm) == 1, states
    twin = next(t for t in trials if t.params["kind"] == "svm" and t is not fitted_svm[0])
    assert twin.state.name == "PRUNED" and f"same fit as trial {fitted_svm[0].number}" in twin.error
    assert sum(t.state.name == "COMPLETE" for t in trials if t.params["kind"] == "network") == 2
