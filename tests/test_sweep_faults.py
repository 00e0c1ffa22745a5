"""Faults a sweep's driver must survive or report: killed workers, data no retry can fix, every trial
failing, and two launches of one sweep at the same moment."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_class_folders
from cli_runs import FAST_HEARTBEAT, REPO, processes, wait_for, write_spec

from core.runs.records import SweepStatus, TrialState
from core.runs.store import RunStore
from core.search import lifecycle
from core.settings import load_settings
from core.spec.sweep import SweepSpec


@pytest.mark.slow
def test_a_killed_worker_under_two_workers_is_requeued_and_the_sweep_finishes(tiny_dataset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "pair-killed", tiny_dataset,
                      {"learning_rate": [0.003, 0.01, 0.03]}, epochs=30)
    driver = subprocess.Popen([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage,
                               "--workers", "2"], cwd=REPO, env=os.environ | FAST_HEARTBEAT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = RunStore(storage)

    def a_trial_runs() -> bool:
        try:
            return any(t.state == TrialState.RUNNING and t.live for t in store.trials("pair-killed"))
        except Exception:                 # the study may not exist yet
            return False

    wait_for(a_trial_runs, 300, "a worker's trial to report an epoch")
    workers = processes("worker", "pair-killed")
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    trials = store.trials("pair-killed")
    done = sorted(t.params["learning_rate"] for t in trials if t.state == TrialState.COMPLETE)
    assert done == [0.003, 0.01, 0.03]
    assert store.sweep("pair-killed").status == SweepStatus.DONE and store.final("pair-killed") is not None


def _sweep_on(dataset: Path, tmp_path: Path, name: str, **params) -> tuple[Path, str]:
    spec = write_spec(tmp_path / f"{name}.yaml", name, dataset, {}, epochs=1, **params)
    return spec, f"sqlite:///{tmp_path / 'runs.db'}"


def test_a_sweep_whose_data_no_retry_can_fix_is_marked_failed_and_never_relaunched(tmp_path):
    dataset = write_class_folders(tmp_path / "lonely", per_class=6, classes={"red": (200, 30, 30), "blue": (30, 30, 200)})
    for extra in sorted((dataset / "blue").iterdir())[1:]:
        extra.unlink()                                    # blue keeps one image: no stratified split
    spec, storage = _sweep_on(dataset, tmp_path, "lonely")
    run = subprocess.run([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    store = RunStore(storage)
    sweep = store.sweep("lonely")
    assert sweep.status == SweepStatus.FAILED, (sweep, run.stderr[-2000:])
    assert "blue" in sweep.failure, sweep.failure
    assert run.returncode != 0
    assert lifecycle.resume_unfinished(store) == []


def test_a_sweep_in_which_every_trial_failed_is_failed_with_the_first_reason(tiny_dataset, tmp_path):
    env = os.environ | {"KERAS_HOME": str(tmp_path / "empty-keras"), "TRANSFERLAB_WEIGHTS_DOWNLOAD": "off"}
    spec, storage = _sweep_on(tiny_dataset, tmp_path, "weightless", backbone="mobilenetv2", weights="imagenet")
    run = subprocess.run([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage], cwd=REPO,
                         capture_output=True, text=True, timeout=600, env=env)
    sweep = RunStore(storage).sweep("weightless")
    assert sweep.status == SweepStatus.FAILED and "WeightsNotFound" in sweep.failure, (sweep, run.stderr[-2000:])
    assert run.returncode != 0


def test_two_launches_of_one_sweep_at_the_same_moment_start_one_driver(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tiny_dataset.parent))
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_yaml(write_spec(tmp_path / "spec.yaml", "twice", tiny_dataset, {}, epochs=1).read_text())
    clicks = threading.Barrier(2)
    errors: list[BaseException] = []

    def click() -> None:
        clicks.wait()
        try:
            lifecycle.start(store, spec, load_settings())
        except BaseException as error:      # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=click) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        drivers = processes("resume", "twice")
        assert len(drivers) == 1, f"{len(drivers)} drivers for one sweep"
    finally:
        for pid in processes("resume", "twice"):
            os.killpg(pid, signal.SIGKILL)


def test_a_record_other_code_wrote_does_not_stop_the_others_from_resuming(tiny_dataset, tmp_path):
    import optuna
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    optuna.create_study(study_name="alien", storage=store.storage).set_user_attr("status", "exploded")
    spec = SweepSpec.from_yaml(write_spec(tmp_path / "spec.yaml", "orphan", tiny_dataset, {}, epochs=1).read_text())
    store.create_sweep(spec)
    store.set_status("orphan", SweepStatus.RUNNING)          # its driver died with the server
    try:
        assert lifecycle.resume_unfinished(store) == ["orphan"]
    finally:
        for pid in processes("resume", "orphan"):
            os.killpg(pid, signal.SIGKILL)


def test_a_restart_resumes_a_sweep_where_its_last_driver_ran_its_workers(tiny_dataset, tmp_path):
    """A sweep launched on Ray (3 workers) is relaunched on Ray after a server restart, not locally."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_yaml(write_spec(tmp_path / "spec.yaml", "on-ray", tiny_dataset, {}, epochs=1).read_text())
    store.create_sweep(spec)
    store.set_driver("on-ray", 2 ** 22 + 7, {"kind": "ray", "workers": 3, "ray_address": None})   # gone
    store.set_status("on-ray", SweepStatus.RUNNING)
    try:
        assert lifecycle.resume_unfinished(store) == ["on-ray"]
        driver = store.sweep("on-ray").driver
        command = Path(f"/proc/{driver.pid}/cmdline").read_bytes().split(b"\0")
        assert command[command.index(b"--executor") + 1] == b"ray" and b"3" in command, command
        assert driver.executor["kind"] == "ray"
    finally:
        for pid in processes("resume", "on-ray"):
            os.killpg(pid, signal.SIGKILL)
