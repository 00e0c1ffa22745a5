"""Sweeps through Ray tasks: the same trials and CV errors as the local executor, a task killed mid-trial,
more tasks than trials, stop and resume, and the resources each task is given.

One local Ray runtime (2 CPUs, 2 declared GPUs, no dashboard, token auth off) serves the whole module; a
driver started by the CLI joins it with --ray-address. Each Ray task runs `python -m core worker` in a
fresh process, which imports TensorFlow: the sweeps take most of a minute each, so they are slow tests.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runs import FAST_HEARTBEAT, REPO, cli, processes, wait_for, write_spec

from core.runs.records import SweepStatus, TrialState
from core.runs.store import RunStore
from core.search import lifecycle
from core.search.executors import run_sweep
from core.search.placement import Executor
from core.settings import load_settings
from core.spec.sweep import ResourcesSpec, SweepSpec

CV_TOLERANCE = 0.04
"""How far a trial's CV error through Ray may be from the same trial run locally: less than one validation
image of a fold (1/13 here). The seeds are the same; only TensorFlow's thread count differs (a task uses
its 1 CPU), which can reorder float sums and, rarely, flip an image near the boundary."""


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The module's local Ray runtime; its GCS address, for drivers in other processes."""
    ray = pytest.importorskip("ray", reason="Ray tests: install requirements-ray.txt")
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"      # else Ray 2.59+ writes a token under the real home
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


@pytest.mark.slow     # starts the Ray runtime: ~8 s and 1 GB
def test_tasks_get_distinct_gpus_and_size_their_worker_by_their_cpus(ray_address):
    """What a worker process is started with inside a task: its own GPU and the task's CPUs."""
    import ray

    from core.search.ray_executor import task_environment, task_options
    task = ray.remote(task_environment).options(**task_options(ResourcesSpec(cpus_per_trial=1, gpus_per_trial=1)))
    first, second = ray.get([task.remote({"TRANSFERLAB_STORAGE": "sqlite:///x.db"}) for _ in range(2)])
    assert {first["CUDA_VISIBLE_DEVICES"], second["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
    assert first["TRANSFERLAB_CPUS"] == second["TRANSFERLAB_CPUS"] == "1"
    assert first["TRANSFERLAB_STORAGE"] == "sqlite:///x.db"


def _spec(tmp_path: Path, dataset: Path, name: str, rates: list[float], epochs: int = 2) -> SweepSpec:
    path = write_spec(tmp_path / f"{name}.yaml", name, dataset, {"learning_rate": rates}, epochs=epochs, **HEAD)
    return SweepSpec.from_yaml(path.read_text())


def _errors(store: RunStore, name: str) -> dict[float, float]:
    trials = store.trials(name)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    return {t.params["learning_rate"]: t.value for t in trials if t.state == TrialState.COMPLETE}


def _sweep(url: str, spec: SweepSpec, executor: Executor) -> RunStore:
    store = RunStore(url)
    lifecycle.create(store, spec, load_settings(), confine=False)
    assert run_sweep(store, spec.name, executor, say=print) is not None
    assert store.status(spec.name) == SweepStatus.DONE
    return store


RATES = [0.01, 0.03]
HEAD = {"head": "dense_dropout", "dense_units": [16], "dropout": [0.5]}     # a small head trained by epochs


@pytest.fixture(scope="module")
def local_errors(tmp_path_factory, tiny_dataset_module) -> dict[float, float]:
    """The CV error of each trial of the reference sweep, run by the local executor."""
    folder = tmp_path_factory.mktemp("local")
    store = _sweep(f"sqlite:///{folder / 'runs.db'}", _spec(folder, tiny_dataset_module, "same", RATES), Executor())
    return _errors(store, "same")


@pytest.fixture(scope="module")
def tiny_dataset_module(tmp_path_factory) -> Path:
    from conftest import write_class_folders
    return write_class_folders(tmp_path_factory.mktemp("data") / "colours")


def _same_as_local(store: RunStore, local: dict[float, float]) -> None:
    through_ray = _errors(store, "same")
    assert sorted(through_ray) == sorted(local) == RATES
    for rate, error in local.items():
        assert through_ray[rate] == pytest.approx(error, abs=CV_TOLERANCE), rate
    assert store.final("same") is not None
    assert sorted(p.name for p in (store.local_folder("same") / "logs").glob("ray-worker-*.log")) == \
        ["ray-worker-0.log", "ray-worker-1.log"]


@pytest.mark.slow
def test_a_ray_sweep_on_sqlite_has_the_local_trials_and_errors(ray_address, local_errors, tiny_dataset_module,
                                                               tmp_path):
    spec = _spec(tmp_path, tiny_dataset_module, "same", RATES)
    _same_as_local(_sweep(f"sqlite:///{tmp_path / 'runs.db'}", spec, Executor("ray", 2)), local_errors)


@pytest.mark.slow
def test_a_ray_sweep_on_postgresql_has_the_local_trials_and_errors(ray_address, local_errors, postgres_url,  # noqa: F811
                                                                   tiny_dataset_module, tmp_path):
    spec = _spec(tmp_path, tiny_dataset_module, "same", RATES)
    _same_as_local(_sweep(postgres_url, spec, Executor("ray", 2)), local_errors)


@pytest.mark.slow
def test_three_ray_workers_on_a_two_trial_grid_complete_exactly_two(ray_address, tiny_dataset_module, tmp_path):
    spec = _spec(tmp_path, tiny_dataset_module, "three", RATES, epochs=1)
    store = _sweep(f"sqlite:///{tmp_path / 'runs.db'}", spec, Executor("ray", 3))
    assert sorted(_errors(store, "three")) == RATES
    assert sum(t.state == TrialState.COMPLETE for t in store.trials("three")) == 2
    assert len(list((store.local_folder("three") / "logs").glob("ray-worker-*.log"))) == 3


def _driver(spec: Path, storage: str, ray_address: str, *more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage, "--executor",
                             "ray", "--ray-address", ray_address, *more], cwd=REPO, env=os.environ | FAST_HEARTBEAT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _running_with_an_epoch(store: RunStore, name: str, complete: int = 0) -> bool:
    try:
        trials = store.trials(name)
    except Exception:                 # the study may not exist yet
        return False
    return (sum(t.state == TrialState.COMPLETE for t in trials) >= complete
            and any(t.state == TrialState.RUNNING and t.live for t in trials))


@pytest.mark.slow
def test_a_ray_task_killed_mid_trial_loses_nothing_finished_and_its_trial_is_retried(ray_address, tiny_dataset,
                                                                                     tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "lost", tiny_dataset, {"learning_rate": [0.003, 0.01, 0.03]},
                      epochs=12, **HEAD)
    driver = _driver(spec, storage, ray_address)
    store = RunStore(storage)
    wait_for(lambda: _running_with_an_epoch(store, "lost", complete=1), 300, "a finished trial and a running one")
    before = {t.number: (t.params["learning_rate"], t.value) for t in store.trials("lost")
              if t.state == TrialState.COMPLETE}
    [worker] = processes("worker", "lost")
    task_process = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(task_process, signal.SIGKILL)          # the Ray task's process, as when its node dies
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    after = _errors(store, "lost")
    assert {n: (rate, after[rate]) for n, (rate, _) in before.items()} == before     # nothing finished redone
    assert sorted(after) == [0.003, 0.01, 0.03]
    assert any(t.state == TrialState.FAIL for t in store.trials("lost"))              # the lost trial, retried
    assert store.status("lost") == SweepStatus.DONE and store.final("lost") is not None


@pytest.mark.slow
def test_stop_and_resume_through_ray(ray_address, tiny_dataset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "paused", tiny_dataset, {"learning_rate": [0.003, 0.01, 0.03]},
                      epochs=8, **HEAD)
    driver = _driver(spec, storage, ray_address, "--workers", "2")
    store = RunStore(storage)
    wait_for(lambda: _running_with_an_epoch(store, "paused"), 300, "a running trial's first epoch")
    cli("stop", "paused", "--storage", storage)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr[-3000:]
    assert store.status("paused") == SweepStatus.STOPPED
    assert not [t for t in store.trials("paused") if t.state == TrialState.RUNNING]
    assert processes("worker", "paused") == []                  # every task's worker ended with the stop
    cli("resume", "paused", "--storage", storage, "--executor", "ray", "--ray-address", ray_address,
        "--workers", "2", env=os.environ | FAST_HEARTBEAT)
    assert sorted(_errors(store, "paused")) == [0.003, 0.01, 0.03]
    assert store.status("paused") == SweepStatus.DONE and store.final("paused") is not None



def test_a_driver_without_the_clusters_token_is_told_in_one_line(tmp_path, tiny_dataset):
    """Ray 2.59+ clusters use token auth: a machine without the token gets one line naming RAY_AUTH_TOKEN."""
    pytest.importorskip("ray", reason="Ray tests: install requirements-ray.txt")
    spec = write_spec(tmp_path / "spec.yaml", "tokenless", tiny_dataset, {}, epochs=1)
    home = tmp_path / "home"                            # no ~/.ray/auth_token there
    home.mkdir()
    done = cli("sweep", str(spec), "--storage", f"sqlite:///{tmp_path / 'runs.db'}", "--executor", "ray",
               "--ray-address", "127.0.0.1:1", check=False, env=os.environ | {"RAY_AUTH_MODE": "token",
                                                                              "HOME": str(home)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the Ray cluster at 127.0.0.1:1 uses token authentication") and \
        "RAY_AUTH_TOKEN" in line, line
