"""A driver or worker that cannot go on says why where every watcher looks: a driver that stops before its
trials run is FAILED with its reason (never relaunched at a server start), a trial that failed on an
unwritable folder keeps its error, a store the driver cannot write is explained from its log, and a
worker whose sweep is deleted under it stops with one line (while a deletion under a live worker is
refused)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_runs import FAST_HEARTBEAT, REPO, wait_for, write_spec

from core.runs.records import SweepStatus, TrialState
from core.runs.store import RunStore, StoreError
from core.search import lifecycle
from core.spec.sweep import SweepSpec


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    """A store of this test alone: its database in a folder of its own, its artifact store another."""
    monkeypatch.setenv("TRANSFERLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'db' / 'runs.db'}")
    return RunStore()


def _create(store: RunStore, tmp_path: Path, dataset: Path, name: str, **params) -> SweepSpec:
    spec = SweepSpec.from_yaml(write_spec(tmp_path / f"{name}.yaml", name, dataset, {}, **params).read_text())
    store.create_sweep(spec)
    return spec


def test_a_driver_stopping_before_its_trials_is_failed_with_why_and_not_relaunched(tiny_dataset, tmp_path,
                                                                                   store):
    """Any error (here the driver's own progress display failing) before a trial starts."""
    from core.search.executors import run_sweep
    _create(store, tmp_path, tiny_dataset, "startup", epochs=1)
    log = store.local_folder("startup") / "driver.log"
    log.write_text("")                              # as a launch from the page leaves it

    def broken_display(done: int, planned: int) -> None:
        raise RuntimeError("the progress display broke")

    assert run_sweep(store, "startup", progress=broken_display) is None
    sweep = store.sweep("startup")
    assert sweep.status == SweepStatus.FAILED, sweep
    assert "RuntimeError: the progress display broke" in sweep.failure, sweep.failure
    assert str(log) in sweep.failure, sweep.failure
    assert lifecycle.resume_unfinished(store) == []


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` takes no new file. As root (who ignores file modes) the immutable attribute, else the mode."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode:
            pytest.skip("cannot make a folder read-only here (no chattr +i)")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.slow     # a real sweep in a driver process: ~10 s, kept out of the fast suite's 10 minutes
def test_a_read_only_artifact_folder_fails_the_sweep_and_its_trial_with_why(tiny_dataset, tmp_path, store):
    """The trial trains, then its out-of-fold scores cannot be kept: the trial says why, the sweep fails."""
    _create(store, tmp_path, tiny_dataset, "read-only", epochs=1)
    store.local_folder("read-only")                 # the sweep's own folder (logs) stays writable
    env = lifecycle.child_environment(store)
    with read_only(Path(store.artifacts.location)):
        run = subprocess.run(lifecycle.python_command("resume", "read-only"), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    sweep = store.sweep("read-only")
    assert sweep.status == SweepStatus.FAILED, (sweep, run.stderr[-3000:])
    assert "not permitted" in sweep.failure, sweep.failure
    [trial] = store.trials("read-only")
    assert trial.state == TrialState.FAIL and "PermissionError" in trial.error, trial
    last = run.stderr.strip().splitlines()[-1]
    assert last == f"sweep read-only failed: {sweep.failure}", run.stderr[-3000:]


def test_a_store_the_driver_cannot_write_is_explained_from_its_log(tiny_dataset, tmp_path, store):
    """The database's folder read-only (SQLite cannot make its journal there) under a running server: the
    driver cannot record why it stopped, so the Sweep page reads its log."""
    from apptest import APP
    from streamlit.testing.v1 import AppTest

    def sweep_page() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["sweep"] = "unwritable"
        at.run()
        return at.switch_page("views/2_Sweep.py").run()

    _create(store, tmp_path, tiny_dataset, "unwritable", epochs=1)
    sweep_page()                                    # the server is up (its start-up resumed nothing)
    store.set_status("unwritable", SweepStatus.RUNNING)
    log = store.local_folder("unwritable") / "driver.log"
    with read_only(tmp_path / "db"):
        with open(log, "ab") as out:
            subprocess.run(lifecycle.python_command("resume", "unwritable"), cwd=REPO, timeout=600,
                           env=lifecycle.child_environment(store), stdout=out, stderr=subprocess.STDOUT)
        at = sweep_page()
    assert not at.exception, [e.value for e in at.exception]
    said = [w.value.replace("\\", "") for w in [*at.warning, *at.error]]
    assert any("The driver stopped: error: run store" in s and "unable to open database file" in s
               for s in said), (said, log.read_text()[-2000:])
    assert not any("restarted" in s for s in said), said


@pytest.mark.slow     # a worker process through a whole trial: ~8 s
def test_a_worker_elsewhere_keeps_its_sweep_and_stops_in_one_line_once_it_is_deleted(tiny_dataset, tmp_path,
                                                                                      store):
    _create(store, tmp_path, tiny_dataset, "busy-worker", epochs=200, early_stopping=0)
    worker = subprocess.Popen(lifecycle.python_command("worker", "--sweep", "busy-worker"), cwd=REPO,
                              env=lifecycle.child_environment(store) | FAST_HEARTBEAT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(t.state == TrialState.RUNNING and t.live and t.live.epochs_done
                              for t in store.trials("busy-worker")), 300, "the worker's first epoch")
        assert not lifecycle.driver_alive(store.sweep("busy-worker"))   # no driver: only the worker runs it
        with pytest.raises(StoreError, match="running in a worker"):
            lifecycle.delete(store, "busy-worker")
        assert "busy-worker" in store.sweep_names()
        store.delete_sweep("busy-worker")          # as an older server, or a lost heartbeat, would
        _, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert worker.returncode == 2 and "deleted while this worker ran it" in lines[-1], stderr[-3000:]
