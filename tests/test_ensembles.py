"""Fold ensembles and flip TTA for the final model, its variants in the record, choosing one."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import write_class_folders

from core.inference.model_card import load_model
from core.runs.records import FinalModel
from core.runs.store import RunStore, StoreError
from core.search.refit import finalize
from core.search.worker import run_worker
from core.spec.space import Choice
from core.spec.sweep import SpecError, SweepSpec
from core.training.ensembles import flip_tta, fold_ensemble, load_fold_models, save_fold_model
from core.training.plan import SweepData


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")


def ensemble_spec(dataset, name: str = "ens", **params) -> SweepSpec:
    return SweepSpec.from_dict({
        "name": name, "folds": 2, "ensemble": True, "data": {"dataset": str(dataset), "test_fraction": 0.25},
        "params": {"backbone": "efficientnet_lite0", "image_size": 32, "epochs": 2, "batch_size": 8,
                   "early_stopping": 0, "reduce_lr": 0, "head": "dense_dropout", "dense_units": 16, **params},
        "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})


@pytest.fixture(scope="module")
def kept_folds(tmp_path_factory) -> tuple[list[keras.Model], str, np.ndarray]:
    """A 2-fold run's fold models (the top 3 backbone layers trained), kept as a sweep keeps them."""
    dataset = write_class_folders(tmp_path_factory.mktemp("data") / "colours")
    spec = ensemble_spec(dataset, trainable_layers=3)
    data = SweepData(spec)
    runner = data.runner(spec.params)
    folder = tmp_path_factory.mktemp("folds")
    runner.run(spec.params, base_cut=data.base_cut(spec.params), on_fold=partial(save_fold_model, folder))
    models, cut = load_fold_models(folder, 2)
    return models, cut, runner.data.images[:10].astype(np.float32)


def test_the_ensemble_averages_the_fold_models(kept_folds):
    models, cut, images = kept_folds
    outputs = [np.asarray(m.predict_on_batch(images)) for m in models]
    assert len(models) == 2 and not np.allclose(outputs[0], outputs[1], atol=1e-4)   # two distinct folds
    ensemble = fold_ensemble(models, cut)
    assert np.allclose(ensemble.predict_on_batch(images), np.mean(outputs, axis=0), atol=1e-5)
    names = [layer.name for layer in ensemble.layers]
    assert cut in names and names.count(cut) == 1             # the frozen part below the cut runs once
    assert [n for n in names if n.startswith("fold")] == ["fold1", "fold2", "fold_average"]


def test_tta_averages_the_image_and_its_mirror(kept_folds, tmp_path):
    models, cut, images = kept_folds
    model = models[0]
    tta = flip_tta(model)
    expected = (model.predict_on_batch(images) + model.predict_on_batch(images[:, :, ::-1])) / 2
    assert not np.allclose(model.predict_on_batch(images), expected, atol=1e-4)   # the flip matters here
    assert np.allclose(tta.predict_on_batch(images), expected, atol=1e-5)
    tta.save(tmp_path / "tta.keras")
    loaded = keras.saving.load_model(tmp_path / "tta.keras")   # built-in layers only
    assert np.allclose(loaded.predict_on_batch(images), expected, atol=1e-5)


@pytest.mark.slow          # the refit beside the ensemble; the no-refit test below runs the kept folds fast
def test_the_final_record_keeps_three_variants_and_the_user_chooses(tiny_dataset, store):
    spec = ensemble_spec(tiny_dataset)
    store.create_sweep(spec)
    run_worker(store, "ens")
    final = finalize(store, "ens")
    assert [v.name for v in final.variants] == ["single", "ensemble", "ensemble_tta"]
    assert final.chosen == "single" and final.model_path == final.variants[0].model_path
    assert len({v.model_path for v in final.variants}) == 3
    for variant in final.variants:
        loaded = load_model(store.model_file(variant.model_path))
        assert loaded.card["variant"] == variant.name and loaded.card["kind"] == "network"
        assert variant.test_accuracy == pytest.approx(np.mean(np.argmax(variant.test["scores"], axis=1)
                                                              == variant.test["y_true"]))
    version = store.version("ens")
    chosen = store.choose_final_variant("ens", "ensemble_tta")
    assert store.final("ens") == chosen and chosen.model_path.endswith("best-ensemble_tta.keras")
    assert chosen.test_accuracy == final.variants[2].test_accuracy and chosen.test == final.variants[2].test
    assert store.version("ens") != version                   # the pages' caches see the choice
    assert store.choose_final_variant("ens", "single").model_path == final.model_path
    with pytest.raises(StoreError, match="no variant 'bagged'"):
        store.choose_final_variant("ens", "bagged")


def test_without_refit_the_final_model_is_the_best_trials_own_fold_models(tiny_dataset, store):
    spec = ensemble_spec(tiny_dataset, "own")
    spec.search.space["learning_rate"] = Choice((0.01, 0.001))
    spec.refit = False
    store.create_sweep(spec)
    run_worker(store, "own")
    trials = store.trials("own")
    best = min(trials, key=lambda t: t.value).number
    kept = store.fold_models_dir("own", best)
    assert sorted(p.name for p in kept.glob("*.keras")) == ["fold1.keras", "fold2.keras"]
    folds = {t.number: [load_model(path).model for path in sorted(store.fold_models_dir("own", t.number)
                                                                  .glob("*.keras"))] for t in trials}
    said: list[str] = []
    final = finalize(store, "own", say=said.append)
    members = final.ensemble_trials or [best]
    assert members[0] == best and set(members) <= {t.number for t in trials}
    assert not any("training them again" in line or "refitting" in line for line in said)
    assert [v.name for v in final.variants] == ["ensemble", "ensemble_tta"]
    assert final.chosen == "ensemble" and final.epochs == 0 and final.model_path.endswith("best-ensemble.keras")
    assert [Path(f).name for f in final.model_files()] == ["best-ensemble.keras", "best-ensemble_tta.keras"]
    images = SweepData(spec).runner(spec.params).data.images[:6].astype(np.float32)
    expected = np.mean([m.predict_on_batch(images) for t in members for m in folds[t]], axis=0)
    ensemble = load_model(store.model_file(final.model_path)).model
    assert np.allclose(ensemble.predict_on_batch(images), expected, atol=1e-5)   # those very weights
    assert final.train["y_true"] == store.oof("own", best).labels.tolist() and final.train["y_true"]
    oof = np.mean([store.oof("own", t).scores for t in members], axis=0)
    assert np.allclose(final.train["scores"], oof, atol=1e-5)
    assert "no refit" in final.describe() and store.final("own").model_path == final.model_path
    assert not any(store.fold_models_dir("own", t.number) for t in trials)   # kept until the final model is made
    version = store.version("own")
    chosen = store.choose_final_variant("own", "ensemble_tta")
    assert chosen.model_path.endswith("best-ensemble_tta.keras") and chosen.test == final.variants[1].test
    assert store.final("own") == chosen and store.version("own") != version   # the pages' caches see it
    with pytest.raises(StoreError, match="no variant 'single'"):
        store.choose_final_variant("own", "single")


def test_no_refit_needs_the_ensemble(tiny_dataset):
    with pytest.raises(SpecError, match="^refit: .*turn ensemble on"):
        SweepSpec.from_dict({"name": "x", "refit": False, "data": {"dataset": str(tiny_dataset)}})


@pytest.mark.slow          # a fallback for sweeps from before folds were kept: two more trainings
def test_a_trial_without_kept_folds_trains_them_again(tiny_dataset, store):
    spec = ensemble_spec(tiny_dataset, "again")
    store.create_sweep(spec)
    run_worker(store, "again")
    store.drop_fold_models("again")
    said: list[str] = []
    final = finalize(store, "again", say=said.append)
    assert any("training them again" in line for line in said)
    assert [v.name for v in final.variants] == ["single", "ensemble", "ensemble_tta"]


def test_without_the_option_the_final_model_is_the_single_refit(tiny_dataset, store):
    spec = ensemble_spec(tiny_dataset, "plain")
    spec.ensemble = False
    store.create_sweep(spec)
    run_worker(store, "plain")
    final = finalize(store, "plain")
    assert final.variants == [] and final.chosen == "single" and Path(final.model_path).name == "best.keras"
    with pytest.raises(StoreError, match="no variant"):
        store.choose_final_variant("plain", "ensemble")


def test_a_final_record_written_before_variants_still_loads():
    old = {"trial": 3, "cv_error": 0.1, "params": {"head": "linear"}, "epochs": 4, "model_path": "m.keras",
           "test": {"y_true": [0]}, "train": {}, "test_accuracy": 0.9, "created": "2025-01-01"}
    record = FinalModel.from_json(old)
    assert record.variants == [] and record.chosen == "single" and record.model_path == "m.keras"
    assert FinalModel.from_json(record.to_json()) == record


def test_the_results_radio_changes_the_chosen_variant(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.runs.records import ModelVariant

    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.create_sweep(SweepSpec.from_dict({"name": "picked", "data": {"dataset": str(tmp_path)}}))
    test = {"classes": ["a", "b"], "y_true": [0, 1], "scores": [[0.9, 0.1], [0.4, 0.6]], "paths": None}
    variants = [ModelVariant(n, f"{n}.keras", test, 1.0) for n in ("single", "ensemble", "ensemble_tta")]
    store.set_final("picked", FinalModel(trial=0, cv_error=0.1, params={}, epochs=1, model_path="single.keras",
                                         test=test, train={}, test_accuracy=1.0, created="now", variants=variants))

    def page():
        from ui import state
        from ui.final_variants import final_variants
        final_variants(state.final("picked"), "picked")

    at = AppTest.from_function(page).run(timeout=60)
    assert not at.exception and not at.error
    assert at.radio[0].value == "single" and len(at.dataframe[0].value) == 3
    at.radio[0].set_value("ensemble_tta").run(timeout=60)
    assert not at.exception
    assert store.final("picked").model_path == "ensemble_tta.keras"
    assert at.radio[0].value == "ensemble_tta"
