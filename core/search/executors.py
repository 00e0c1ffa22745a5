"""Where a sweep's trials run: in this process, in local worker processes, or detached for the UI.

Scale-out needs nothing here: `python -m core worker --storage URL --sweep NAME` on any machine
that reaches the store joins the sweep (Optuna's storage hands out the trials). The driver
(`run_sweep`) waits for everyone, requeues trials of killed workers, then refits the best.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from core.settings import REPO_ROOT
from core.runs.store import HEARTBEAT_S, RunStore
from core.search.sweeps import SweepData, Watch, finalize, remaining_trials, run_worker

Say = Callable[[str], None]
Progress = Callable[[int, int], None]   # (finished trials, planned trials)
POLL_S = 2.0


def _python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", *args]


def worker_command(storage_url: str, name: str) -> list[str]:
    return _python_command("worker", "--storage", storage_url, "--sweep", name)


def _finished(store: RunStore, name: str) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in store.trials(name))


def _running(store: RunStore, name: str) -> int:
    return sum(t.state == TrialState.RUNNING for t in store.trials(name))


def running_status(store: RunStore, name: str) -> str:
    """Where the running trials are, from their live records (works for workers anywhere)."""
    parts = []
    for t in store.trials(name):
        live = t.user_attrs.get("live") if t.state == TrialState.RUNNING else None
        if live:
            parts.append(f"trial {t.number}: fold {live['fold'] + 1}, epoch {live['epoch'] + 1}")
    return "; ".join(parts)


def run_sweep(store: RunStore, name: str, workers: int = 1, say: Say | None = None,
              progress: Progress | None = None, stage: Say | None = None) -> dict | None:
    """Run the sweep to its end here (1 worker) or in `workers` processes, then refit the best.

    `progress` gets (finished, planned) trials; `stage` a line on what runs right now.
    Returns the final model record, or None when the sweep was stopped or nothing completed.
    """
    say = say or print
    stage = stage or (lambda _: None)
    spec = store.spec(name)
    planned = spec.grid_size()
    store.request_stop(name, False)
    store.set_status(name, "running")
    store.set_driver(name, os.getpid())

    def tick(*_: object) -> None:
        if progress:
            progress(_finished(store, name), planned)

    tick()
    # Working here, the dataset is loaded, fingerprinted and split once for the trials and the refit.
    data = SweepData(spec, say=say) if workers <= 1 and remaining_trials(store, name, spec) > 0 else None
    while True:
        if store.stop_requested(name):
            store.set_status(name, "stopped")
            say(f"sweep {name!r} stopped; resume it with: python -m core resume {name}")
            return None
        if remaining_trials(store, name, spec) > 0:
            if workers <= 1:
                run_worker(store, name, Watch(say=say, stage=stage, trial_done=tick), data=data)
            else:
                _run_worker_processes(store, name, workers, lambda: (tick(), stage(running_status(store, name))))
            continue
        if _running(store, name):
            # Trials held by workers elsewhere, or by killed ones: the heartbeat turns the
            # latter into FAIL + a WAITING retry once their grace period has passed.
            time.sleep(HEARTBEAT_S)
            optuna.storages.fail_stale_trials(store.study(name))
            tick()
            continue
        break
    stage("refitting the best configuration")
    record = finalize(store, name, say=say, data=data)
    store.set_status(name, "done")
    return record


def _run_worker_processes(store: RunStore, name: str, workers: int, tick: Callable[[], None]) -> None:
    log_dir = store.artifact_dir(name) / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []
    for i in range(workers):
        log = open(log_dir / f"worker-{i}.log", "ab")
        procs.append((subprocess.Popen(worker_command(store.url, name), cwd=REPO_ROOT, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    try:
        while any(p.poll() is None for p, _ in procs):
            time.sleep(POLL_S)
            tick()
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.terminate()
            log.close()
    failed = [p.returncode for p, _ in procs if p.returncode]
    if failed:
        raise RuntimeError(f"{len(failed)} worker process(es) exited with errors; see {log_dir}")


def launch_detached(store: RunStore, name: str, workers: int = 1) -> int:
    """Start the sweep's driver in its own session (the UI's Launch/Resume); returns its pid.

    It outlives the Streamlit script run and the browser tab; its output goes to a log file.
    """
    log_path = store.artifact_dir(name) / "driver.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(_python_command("resume", name, "--storage", store.url, "--workers", str(workers)),
                                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    store.set_driver(name, proc.pid)
    store.set_status(name, "running")
    return proc.pid


def driver_alive(store: RunStore, name: str) -> bool:
    """Is the process driving this sweep still running (on this machine)?"""
    driver = store.driver(name)
    if driver.get("host") != socket.gethostname():
        return False
    pid = int(driver.get("pid", 0))
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return pid > 0 and b"core" in cmdline.read_bytes()
    except OSError:
        return False


def resume_unfinished(store: RunStore, workers: int = 1) -> list[str]:
    """After a server restart: relaunch every sweep marked running whose driver is gone."""
    resumed = []
    for name in store.sweep_names():
        if store.status(name) == "running" and not driver_alive(store, name):
            launch_detached(store, name, workers)
            resumed.append(name)
    return resumed
