"""The run store on a real SQLite database: sweeps, trials, final record, stop flag, errors."""
from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from core.runs.records import FinalModel, FoldResult, SweepStatus, TrialResult
from core.runs.store import RunStore, StoreError
from core.spec.sweep import SweepSpec


def make_spec(name: str = "s1", **search) -> SweepSpec:
    return SweepSpec.from_dict({"name": name, "data": {"dataset": "colours"},
                                "search": search or {"method": "grid", "space": {"batch_size": [8, 16]}}})


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")


def test_sweep_round_trip(store):
    spec = make_spec()
    assert store.create_sweep(spec) is True
    assert store.create_sweep(spec) is False          # same spec again: a resume, not an error
    assert store.spec("s1") == spec
    assert store.sweep_names() == ["s1"]
    assert store.status("s1") == "created"
    store.set_status("s1", "running")
    assert store.sweeps().iloc[0].to_dict() | {"created": ""} == {
        "sweep": "s1", "status": "running", "created": "", "planned": 2, "complete": 0, "running": 0,
        "waiting": 0, "pruned": 0, "fail": 0, "best_error": None}


def test_a_different_spec_under_a_taken_name_is_refused(store):
    store.create_sweep(make_spec())
    with pytest.raises(StoreError, match="different sweep named 's1'"):
        store.create_sweep(make_spec(method="grid", space={"batch_size": [4]}))


def test_a_sweep_recorded_before_a_new_spec_field_resumes_from_the_same_yaml(store):
    """A spec stored by an older version lacks fields added since (their defaults apply): the same YAML
    run again is that sweep's resume, not "a different sweep"."""
    spec = make_spec()
    store.create_sweep(spec)
    older = spec.to_dict()
    del older["resources"]
    store.storage.set_study_user_attr(store._require("s1"), "spec", older)
    assert store.create_sweep(spec) is False


def test_trials_frame_and_records(store):
    store.create_sweep(make_spec())
    study = store.study("s1")
    trial = study.ask({"batch_size": optuna.distributions.CategoricalDistribution([8, 16])})
    store.set_result(trial, TrialResult(folds=[FoldResult(0, 0.2, 1, {}, {}), FoldResult(1, 0.4, 2, {}, {})],
                                        cache="miss", cut="", duration_s=1.0))
    study.tell(trial, 0.3)
    frame = store.trials_frame("s1")
    row = frame.iloc[0]
    assert (row["state"], row["value"], row["fold_errors"], row["batch_size"], row["cache"]) == \
        ("COMPLETE", 0.3, [0.2, 0.4], trial.params["batch_size"], "miss")
    record = store.trial("s1", 0)
    assert record.result.folds[1].best_epoch == 2
    with pytest.raises(StoreError, match="no trial 5"):
        store.trial("s1", 5)
    assert store.sweeps().iloc[0]["best_error"] == 0.3


def test_final_record_stop_flag_and_version(store):
    store.create_sweep(make_spec())
    before = store.version("s1")
    store.set_final("s1", FinalModel(trial=0, cv_error=0.1, params={}, epochs=1, model_path="m.keras", test={},
                                     train={}, test_accuracy=0.9, created="now"))
    assert store.final("s1").test_accuracy == 0.9
    assert store.version("s1") != before
    assert not store.stop_requested("s1")
    store.request_stop("s1")
    assert store.stop_requested("s1")
    store.request_stop("s1", False)
    assert not store.stop_requested("s1")


def test_unknown_sweep_names_the_known_ones(store):
    store.create_sweep(make_spec("alpha"))
    with pytest.raises(StoreError, match="no sweep named 'beta'.*alpha"):
        store.spec("beta")


def test_two_store_objects_share_one_database(store, tmp_path):
    store.create_sweep(make_spec())
    other = RunStore(store.url, artifacts_dir=tmp_path / "artifacts")
    assert other.spec("s1") == store.spec("s1")
    other.delete_sweep("s1")
    assert store.sweep_names() == []


def test_failure_and_who_launched_or_stopped_are_kept_with_the_sweep(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_dict({"name": "kept", "data": {"dataset": "x"}})
    store.create_sweep(spec)
    store.set_launched_by("kept", "ada")
    store.set_stopped_by("kept", "bob")
    store.set_failed("kept", "class 'tulip' has one image")
    sweep = store.sweep("kept")
    assert (sweep.status, sweep.failure) == (SweepStatus.FAILED, "class 'tulip' has one image")
    assert (sweep.launched_by, sweep.stopped_by) == ("ada", "bob")
    store.set_status("kept", SweepStatus.RUNNING)       # tried again: the old reason no longer holds
    assert store.sweep("kept").failure == ""


def test_delete_removes_the_sweep_and_its_artifacts_but_never_a_running_one(tmp_path):
    from core.search import lifecycle
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "old", "data": {"dataset": "x"}}))
    (store.local_folder("old") / "final.keras").write_bytes(b"model")
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "core"])
    try:
        store.set_driver("old", driver.pid)
        with pytest.raises(StoreError, match="stop it"):
            lifecycle.delete(store, "old")
    finally:
        driver.kill()
        driver.wait()
    lifecycle.delete(store, "old")
    assert store.sweep_names() == [] and not (tmp_path / "artifacts" / "old").exists()


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried(tmp_path):
    """A SIGKILL between a trial's creation and its first heartbeat left it RUNNING forever."""
    import time
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "orphaned", "data": {"dataset": "x"}}))
    store.study("orphaned").ask()                       # RUNNING, no heartbeat: its process is gone
    store.storage.grace_period = 1
    store.fail_stale_trials("orphaned")
    assert [t.state.name for t in store.trials("orphaned")] == ["RUNNING"]   # within the grace period
    time.sleep(2.1)
    store.fail_stale_trials("orphaned")
    assert sorted(t.state.name for t in store.trials("orphaned")) == ["FAIL", "WAITING"]


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path):
    """The server and a CLI driver opening a new SQLite store together raced on Optuna's schema: the
    loser failed with "table ... already exists" (seen in a clean-clone .ci/run; six threads lost it in
    every one of ten rounds before the fix)."""
    import threading
    url = f"sqlite:///{tmp_path / 'new.db'}"
    start, errors = threading.Barrier(6), []

    def open_store() -> None:
        start.wait()
        try:
            RunStore(url, artifacts_dir=tmp_path / "artifacts")
        except Exception as error:          # what the test is about: any failure to open it
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert RunStore(url, artifacts_dir=tmp_path / "artifacts").sweep_names() == []
