"""Where a sweep's trials run: in this process, in local worker processes, or in Ray tasks.

The driver (`run_sweep`) makes its process the sweep's one driver, fetches the ImageNet weights the
sweep needs, runs the workers its `Executor` names, waits for everyone (workers started by hand with
`python -m core worker --storage URL --sweep NAME` on any machine that reaches the store, too),
requeues trials of killed workers, then refits the best.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO

from core.progress import Progress, Say
from core.runs.optuna_storage import HEARTBEAT_S
from core.runs.records import FinalModel, SweepStatus, TrialState
from core.runs.store import RunStore, StoreError
from core.runs.store_messages import database_reason
from core.search.deadline import spent, start_clock
from core.search.lifecycle import child_environment, claim, driver_log, python_command
from core.search.oracle import TrialCounts, remaining_trials
from core.search.placement import Executor, WorkerShare, local_shares
from core.search.refit import finalize
from core.search.worker import EveryTrialFailed, Watch, fatal_reason, run_worker, sweep_step
from core.settings import REPO_ROOT
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData

Download = Callable[[str], AbstractContextManager[Progress]]   # a (bytes done, total) display, by label
POLL_S = 2.0


def running_status(store: RunStore, name: str) -> str:
    """Where the running trials are, from their live records (works for workers anywhere)."""
    return "; ".join(f"trial {t.number}: fold {t.live.fold + 1}, epoch {t.live.epoch + 1}"
                     for t in store.trials(name) if t.state == TrialState.RUNNING and t.live)


def run_sweep(store: RunStore, name: str, executor: Executor = Executor(), say: Say | None = None,
              progress: Progress | None = None, stage: Say | None = None,
              download: Download | None = None) -> FinalModel | None:
    """Run the sweep to its end where `executor` says (here with 1 local worker), then refit the best.

    `progress` gets (finished, planned) trials; `stage` a line on what runs right now; `download` a
    display for each weights download (the CLI's bars). StoreError when another process drives it.
    Returns the final model record, or None when the sweep was stopped, failed or nothing completed.
    A sweep that fails for a reason no retry can fix (its data, an unwritable folder, every trial
    failing), or that stops on any error before a trial starts (`start_up_failure`), is marked FAILED
    with that reason, so a restarted server does not relaunch it.
    """
    say = say or print
    if executor.kind == "ray":      # a cluster this machine cannot join is the user's to fix, not the sweep's fault
        from core.search.ray_executor import connect
        connect(executor.ray_address)
    began = time.time()
    try:
        return _drive(store, name, executor, say, progress, stage or (lambda _: None), download)
    except Exception as error:
        reason = fatal_reason(error) or start_up_failure(store, name, error, began)
        if reason is None:
            raise
        store.set_failed(name, reason)          # the CLI says so, once, with the reason
        return None


def start_up_failure(store: RunStore, name: str, error: Exception, began: float) -> str | None:
    """Why the driver stopped, when `error` (one `fatal_reason` does not know: a bug, a MemoryError) ended it
    before any trial started since `began`: a relaunch would meet it again, so the sweep is FAILED with it,
    never relaunched at a server start (Resume still tries again). None for a store that cannot be reached
    or written (a restart may find it back) and for another process driving the sweep."""
    if isinstance(error, StoreError) or database_reason(error):
        return None
    try:
        if any(t.started is not None and t.started >= began for t in store.trials(name)):
            return None
        log = driver_log(store, name)
    except Exception:                   # the store cannot say: leave the sweep as it is
        return None
    where = f" (log: {log})" if log.exists() else ""
    return f"the driver stopped before any trial started: {type(error).__name__}: {error}{where}"


def _drive(store: RunStore, name: str, executor: Executor, say: Say, progress: Progress | None,
           stage: Say, download: Download | None) -> FinalModel | None:
    claim(store, name, executor)
    spec = store.spec(name)
    planned = spec.planned_trials()
    store.request_stop(name, False)
    store.set_status(name, SweepStatus.RUNNING)
    start_clock(store, name)            # a time budget counts from here (on from what a resumed sweep spent)

    def tick(*_: object) -> None:
        if progress:
            progress(TrialCounts.of(store.trials(name)).done, planned)

    def remaining() -> int:
        return remaining_trials(store.trials(name), spec)

    tick()
    if remaining() > 0:
        fetch_weights(store, spec, download)
    # The dataset is loaded, checked and split once, before any worker starts: bad data fails the
    # sweep here with its reason. Working here, the trials and the refit share it.
    data = SweepData.of_sweep(store, name, say=say) if remaining() > 0 or store.final(name) is None else None
    while True:
        if store.stop_requested(name):
            store.set_status(name, SweepStatus.STOPPED)
            say(f"sweep {name!r} stopped; resume it with: python -m core resume {name}")
            return None
        if store.status(name) == SweepStatus.FAILED:       # a worker process met a fatal error
            return None
        if remaining() > 0 and not spent(store, name):
            watched = lambda: (tick(), stage(running_status(store, name)))   # noqa: E731
            if executor.kind == "ray":
                from core.search.ray_executor import run_ray_workers
                run_ray_workers(store, name, executor, spec.resources, say, watched)
            elif executor.workers <= 1:
                run_worker(store, name, Watch(say=say, stage=stage, trial_done=tick), data=data)
            else:
                _run_worker_processes(store, name, executor.workers, say, watched)
            continue
        if TrialCounts.of(store.trials(name)).running:
            # Trials held by workers elsewhere, or by killed ones: the heartbeat turns the
            # latter into FAIL + a WAITING retry once their grace period has passed.
            time.sleep(HEARTBEAT_S)
            store.fail_stale_trials(name)
            tick()
            continue
        break
    trials = store.trials(name)
    if not TrialCounts.of(trials).complete:
        errors = [t.error for t in trials if t.state == TrialState.FAIL and t.error]
        raise EveryTrialFailed(f"no trial completed ({len(trials)} ran); the first error: "
                               f"{errors[0] if errors else 'none recorded, see the driver log'}")
    stage("refitting the best configuration")
    record = finalize(store, name, say=say, data=data)
    store.set_status(name, SweepStatus.DONE)
    return record


def _run_worker_processes(store: RunStore, name: str, workers: int, say: Say, tick: Callable[[], None]) -> None:
    """Run `workers` worker processes until they all exit.

    A worker killed by a signal (OOM killer, a user) is reported and the driver goes on: its trial turns
    FAIL + a queued retry once its heartbeat stops. One that exits with an error fails the sweep with
    the last line of its log, rather than being relaunched forever.
    """
    log_dir = store.local_folder(name) / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []
    for share in local_shares(workers):
        say(share.describe())
        log = open(log_dir / f"worker-{share.index}.log", "ab")
        procs.append((start_worker(store, share, python_command("worker", "--sweep", name), log), log))
    try:
        while any(p.poll() is None for p, _ in procs):
            time.sleep(POLL_S)
            tick()
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.terminate()
            log.close()
    for i, (p, _) in enumerate(procs):
        worker_exited(store, name, f"worker {i}", p.returncode, log_dir / f"worker-{i}.log", say)


def start_worker(store: RunStore, share: WorkerShare, command: list[str], log: IO[bytes]) -> subprocess.Popen:
    """A local worker process running `command` with the store's environment and its share of the machine
    (its GPU, its CPU threads), its output into `log`."""
    return subprocess.Popen(command, cwd=REPO_ROOT, env=child_environment(store) | share.environment(),
                            stdout=log, stderr=subprocess.STDOUT)


def worker_exited(store: RunStore, name: str, who: str, code: int, log_path: Path, say: Say) -> None:
    """What a worker process's exit means for the sweep: killed by a signal (OOM killer, a user, a lost
    node), its trial is retried; an error exit fails the sweep with the last line of its log."""
    if code < 0:
        say(f"{who} was killed (signal {-code}); its trial will be retried")
    elif code > 0 and store.status(name) != SweepStatus.FAILED:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        store.set_failed(name, f"{who} exited with code {code}: "
                               f"{lines[-1] if lines else 'no output'} (log: {log_path})")


def fetch_weights(store: RunStore, spec: SweepSpec, download: Download | None = None) -> None:
    """Download the ImageNet weights the sweep will need now, shown as a step on the Sweep page
    (`sweep_step`) and by `download` (the CLI's bar), rather than silently inside its first trial. A file
    that cannot be had is left for the trials, whose failure names it."""
    from core.models.weights import WeightsNotFoundError, resolve_weights
    if spec.params.weights != "imagenet":
        return
    for backbone, size in _weights_needed(spec):
        with (sweep_step(store, spec.name, f"ImageNet weights of {backbone} (bytes)") as step,
              (download or _no_display)(f"weights {backbone}") as shown):
            try:
                resolve_weights(backbone, image_size=size, progress=lambda done, total: (step(done, total),
                                                                                          shown(done, total)))
            except WeightsNotFoundError:
                continue


def _weights_needed(spec: SweepSpec) -> Iterator[tuple[str, int]]:
    from core.spec.space import Choice

    def values(field: str) -> list:
        dim = spec.search.space.get(field)
        return list(dim.values) if isinstance(dim, Choice) else [getattr(spec.params, field)]
    for backbone in values("backbone"):
        for size in values("image_size"):
            yield backbone, size


def _no_display(_: str) -> AbstractContextManager[Progress]:
    return nullcontext(lambda done, total: None)
