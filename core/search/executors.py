"""Where a sweep's trials run: in this process, or in local worker processes.

Scale-out needs nothing here: `python -m core worker --storage URL --sweep NAME` on any machine
that reaches the store joins the sweep (Optuna's storage hands out the trials). The driver
(`run_sweep`) waits for everyone, requeues trials of killed workers, then refits the best.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

from core.runs.records import FinalModel, SweepStatus, TrialState
from core.runs.store import HEARTBEAT_S, RunStore
from core.search.lifecycle import child_environment, python_command
from core.search.oracle import TrialCounts, remaining_trials
from core.search.refit import finalize
from core.search.worker import Watch, run_worker
from core.settings import REPO_ROOT
from core.training.plan import SweepData

Say = Callable[[str], None]
Progress = Callable[[int, int], None]   # (finished trials, planned trials)
POLL_S = 2.0


def running_status(store: RunStore, name: str) -> str:
    """Where the running trials are, from their live records (works for workers anywhere)."""
    return "; ".join(f"trial {t.number}: fold {t.live.fold + 1}, epoch {t.live.epoch + 1}"
                     for t in store.trials(name) if t.state == TrialState.RUNNING and t.live)


def run_sweep(store: RunStore, name: str, workers: int = 1, say: Say | None = None,
              progress: Progress | None = None, stage: Say | None = None) -> FinalModel | None:
    """Run the sweep to its end here (1 worker) or in `workers` processes, then refit the best.

    `progress` gets (finished, planned) trials; `stage` a line on what runs right now.
    Returns the final model record, or None when the sweep was stopped or nothing completed.
    """
    say = say or print
    stage = stage or (lambda _: None)
    spec = store.spec(name)
    planned = spec.grid_size()
    store.request_stop(name, False)
    store.set_status(name, SweepStatus.RUNNING)
    store.set_driver(name, os.getpid())

    def tick(*_: object) -> None:
        if progress:
            progress(TrialCounts.of(store.trials(name)).done, planned)

    def remaining() -> int:
        return remaining_trials(store.trials(name), spec)

    tick()
    # Working here, the dataset is loaded, fingerprinted and split once for the trials and the refit.
    data = SweepData(spec, say=say) if workers <= 1 and remaining() > 0 else None
    while True:
        if store.stop_requested(name):
            store.set_status(name, SweepStatus.STOPPED)
            say(f"sweep {name!r} stopped; resume it with: python -m core resume {name}")
            return None
        if remaining() > 0:
            if workers <= 1:
                run_worker(store, name, Watch(say=say, stage=stage, trial_done=tick), data=data)
            else:
                _run_worker_processes(store, name, workers, lambda: (tick(), stage(running_status(store, name))))
            continue
        if TrialCounts.of(store.trials(name)).running:
            # Trials held by workers elsewhere, or by killed ones: the heartbeat turns the
            # latter into FAIL + a WAITING retry once their grace period has passed.
            time.sleep(HEARTBEAT_S)
            store.fail_stale_trials(name)
            tick()
            continue
        break
    stage("refitting the best configuration")
    record = finalize(store, name, say=say, data=data)
    store.set_status(name, SweepStatus.DONE)
    return record


def _run_worker_processes(store: RunStore, name: str, workers: int, tick: Callable[[], None]) -> None:
    log_dir = store.artifact_dir(name) / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []
    for i in range(workers):
        log = open(log_dir / f"worker-{i}.log", "ab")
        procs.append((subprocess.Popen(python_command("worker", "--sweep", name), cwd=REPO_ROOT,
                                       env=child_environment(store), stdout=log, stderr=subprocess.STDOUT), log))
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
