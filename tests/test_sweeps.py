"""Sweeps in-process on a real SQLite store: pruning reports, Stop requeues, resume completes the grid."""
from __future__ import annotations

import re

import pytest

from core.runs.store import RunStore
from core.search.oracle import TrialCounts, make_pruner, make_sampler, remaining_trials
from core.search.worker import Objective, Watch, run_worker
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData


def tiny_spec(dataset, name: str, search: dict) -> SweepSpec:
    return SweepSpec.from_dict({
        "name": name, "folds": 2, "data": {"dataset": str(dataset), "test_fraction": 0.25},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32, "epochs": 2,
                   "batch_size": 8, "early_stopping": 0, "reduce_lr": 0},
        "search": search})


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")


def test_pruning_search_reports_every_epoch(tiny_dataset, store):
    spec = tiny_spec(tiny_dataset, "pruned", {"method": "random", "budget": 3, "pruning": True,
                                              "space": {"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}}})
    assert type(make_pruner(spec)).__name__ == "SuccessiveHalvingPruner"
    store.create_sweep(spec)
    assert run_worker(store, "pruned") == 3
    trials = store.trials("pruned")
    assert len(trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    for t in trials:
        steps = sorted(t.intermediate_values)
        assert steps[:2] == [0, 1]            # fold 1, epochs 1 and 2: the pruner saw each epoch
        assert 1e-4 <= t.params["learning_rate"] <= 1e-1
    assert remaining_trials(store.trials("pruned"), spec) == 0


def test_stop_requeues_the_running_trial_and_resume_finishes_the_grid(tiny_dataset, store):
    spec = tiny_spec(tiny_dataset, "stopped", {"method": "grid", "space": {"optimizer": ["sgd", "adam"]}})
    store.create_sweep(spec)
    store.request_stop("stopped")
    assert run_worker(store, "stopped") == 0
    states = sorted(t.state.name for t in store.trials("stopped"))
    assert states == ["FAIL", "WAITING"]               # interrupted, and queued again with its grid point
    assert TrialCounts.of(store.trials("stopped")) == TrialCounts(waiting=1)   # the retry stands for it
    store.request_stop("stopped", False)
    assert remaining_trials(store.trials("stopped"), spec) == 2
    run_worker(store, "stopped")
    done = [t for t in store.trials("stopped") if t.state.name == "COMPLETE"]
    assert sorted(t.params["optimizer"] for t in done) == ["adam", "sgd"]
    assert TrialCounts.of(store.trials("stopped")) == TrialCounts(complete=2)  # not reported failed
    assert remaining_trials(store.trials("stopped"), spec) == 0
    live = store.trial("stopped", done[0].number).live
    assert live.curves["fold 2"]["val_loss"] and live.fold == 1


def test_a_failing_configuration_fails_its_trial_not_the_sweep(tiny_dataset, store, tmp_path, monkeypatch):
    """ImageNet weights missing (downloads are off in tests): each trial fails with the reason."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-weights"))
    spec = tiny_spec(tiny_dataset, "partly-broken", {"method": "grid", "space": {"batch_size": [8, 16]}})
    spec.params.weights = "imagenet"
    store.create_sweep(spec)
    run_worker(store, "partly-broken")
    frame = store.trials_frame("partly-broken")
    assert list(frame["state"]) == ["FAIL", "FAIL"]
    assert all("WeightsNotFound" in e and "mobilenet_v2" in e for e in frame["error"])


def test_a_trial_started_after_the_grid_is_taken_ends_unrun_and_unlisted(tiny_dataset, store):
    """Two workers can both see one trial left and both start one; the later one must not repeat a point."""
    spec = tiny_spec(tiny_dataset, "raced", {"method": "grid", "space": {"learning_rate": [0.01, 0.001]}})
    store.create_sweep(spec)
    assert run_worker(store, "raced") == 2
    study = store.study("raced", sampler=make_sampler(spec))
    study.optimize(Objective(store, "raced", SweepData(spec)), n_trials=1)   # the race's losing worker
    raw = study.get_trials()
    assert len(raw) == 3 and raw[2].state.name == "PRUNED" and "learning_rate" not in raw[2].params
    assert sorted(t.params["learning_rate"] for t in store.trials("raced")) == [0.001, 0.01]
    assert store.sweeps().set_index("sweep").loc["raced", "pruned"] == 0
    assert remaining_trials(store.trials("raced"), spec) == 0


def test_every_training_image_gets_one_out_of_fold_score_per_trial(tiny_dataset, store, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))     # a cold cache: the pass runs here
    spec = tiny_spec(tiny_dataset, "oof", {"method": "grid", "space": {"optimizer": ["sgd", "adam"]}})
    store.create_sweep(spec)
    stages: list[str] = []
    run_worker(store, "oof", Watch(stage=stages.append))
    assert any(re.fullmatch(r"trial 0: backbone activations \d+/\d+, \d+/s, .+ left", line) for line in stages)
    data = SweepData(spec)
    train_paths = sorted(data.dataset.paths[r] for r in data.train_rows)
    for trial in store.trials("oof"):
        oof = store.oof("oof", trial.number)
        assert sorted(oof.paths) == train_paths                    # each training image once, no test image
        assert oof.scores.shape == (len(train_paths), len(data.dataset.classes))
        assert oof.scores.sum(axis=1) == pytest.approx(1.0, abs=1e-4)
        assert sorted(set(oof.folds.tolist())) == [0, 1]
        by_path = dict(zip(data.dataset.paths, data.dataset.labels))
        assert [by_path[p] for p in oof.paths] == oof.labels.tolist()
        for fold in trial.result.folds:       # the stored scores are the ones each fold was judged on
            held = oof.folds == fold.fold
            accuracy = float((oof.scores[held].argmax(axis=1) == oof.labels[held]).mean())
            assert accuracy == pytest.approx(fold.accuracy)
