"""The one owner of a sweep's life: start, resume, stop, and what state it is in.

The Sweep page, its live panel, the server's start-up and the CLI all call these, so the rules
(when a driver is launched, when a sweep counts as finished) are written once.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.data.datasets import DatasetError, dataset_path_anywhere, dataset_path_in_roots
from core.data.decisions import DecisionLog
from core.runs.records import SweepRecord, SweepStatus, TrialRecord
from core.runs.store import RunStore, StoreError
from core.search.oracle import TrialCounts, remaining_trials
from core.search.placement import Executor
from core.search.time_left import TimeLeft, budget_left, sweep_seconds, time_left
from core.settings import REPO_ROOT, Settings
from core.spec.sweep import SweepSpec

log = logging.getLogger(__name__)


def python_command(*args: str) -> list[str]:
    """`python -m core ARGS` with this interpreter."""
    return [sys.executable, "-m", "core", *args]


def child_environment(store: RunStore) -> dict[str, str]:
    """The environment of a process working on `store`: the URL travels here, never on the command
    line, where any user of the machine could read its password (`ps`)."""
    return os.environ | {"TRANSFERLAB_STORAGE": store.url, "TRANSFERLAB_ARTIFACTS": store.artifacts.location}


@dataclass(frozen=True)
class SweepView:
    """A sweep as a watcher sees it at one moment: its record, its trials and their counts."""

    sweep: SweepRecord
    trials: list[TrialRecord]
    counts: TrialCounts
    planned: int
    driven: bool                     # a live process on this machine drives it
    left: TimeLeft                   # seconds left, per running trial and for the sweep
    took_s: float | None             # a finished sweep's wall time
    driver_error: str = ""           # marked running, nobody drives it: the error its driver's log ends on

    @property
    def needs_resume(self) -> bool:
        """Marked running, but nobody drives it (the server restarted, or the driver crashed)."""
        return self.sweep.status == SweepStatus.RUNNING and not self.driven


def view(store: RunStore, name: str) -> SweepView:
    """Two queries: the sweep's attributes and its trials (and, when nobody drives a running sweep, the
    end of its driver's log)."""
    sweep = store.sweep(name)
    trials = store.trials(name)
    spec = SweepSpec.from_dict(sweep.spec)
    driven = driver_alive(sweep)
    orphan = sweep.status == SweepStatus.RUNNING and not driven
    left = time_left(trials, remaining_trials(trials, spec), budget=budget_left(sweep, spec))
    return SweepView(sweep=sweep, trials=trials, counts=TrialCounts.of(trials), planned=spec.planned_trials(),
                     driven=driven, left=left,
                     took_s=sweep_seconds(sweep, trials),
                     driver_error=driver_error(store, name) if orphan else "")


LOG_TAIL_BYTES = 8192
_ERROR_LINE = re.compile(r"error: .+|[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: .*)?")


def driver_log(store: RunStore, name: str) -> Path:
    """Where the sweep's detached driver writes (this machine's folder of the sweep)."""
    return store.local_folder(name) / "driver.log"


def driver_error(store: RunStore, name: str) -> str:
    """The error line a dead driver's log ends on (a traceback's last line, the CLI's `error: ...`): the
    reason when the driver could not record it in the store (the store unwritable, the disk full). ""
    when the log ends otherwise (a driver killed by a signal) or cannot be read."""
    try:
        with open(driver_log(store, name), "rb") as log:
            log.seek(max(log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES, 0))
            tail = log.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in re.split(r"[\r\n]+", tail) if line.strip()]
    return lines[-1] if lines and _ERROR_LINE.fullmatch(lines[-1]) else ""


def driver_alive(sweep: SweepRecord) -> bool:
    """Is the process driving this sweep still running (on this machine)?"""
    driver = sweep.driver
    if driver is None or driver.host != socket.gethostname() or driver.pid <= 0:
        return False
    try:
        return b"core" in Path(f"/proc/{driver.pid}/cmdline").read_bytes()
    except OSError:
        return False


def launch_detached(store: RunStore, name: str, executor: Executor = Executor()) -> int:
    """Start the sweep's driver in its own session; returns its pid.

    It outlives the Streamlit script run and the browser tab; its output goes to a log file.
    """
    with open(driver_log(store, name), "ab") as log:
        log.write(time.strftime("\n--- driver launched %Y-%m-%d %H:%M:%S ---\n").encode())   # ends old errors
        log.flush()
        proc = subprocess.Popen(python_command("resume", name, *executor.arguments()), cwd=REPO_ROOT,
                                env=child_environment(store), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    store.set_driver(name, proc.pid, executor.to_json())
    store.set_status(name, SweepStatus.RUNNING)
    return proc.pid


@contextmanager
def _launching(store: RunStore, name: str) -> Iterator[None]:
    """One launch of a sweep at a time on this server: two Launch (or Resume) clicks at the same
    moment, from two sessions, start one driver. A file lock, since the app's sessions are threads
    of one server process and its restarts are other processes."""
    with open(store.local_folder(name) / "launch.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def create(store: RunStore, spec: SweepSpec, settings: Settings, confine: bool = True) -> bool:
    """Record a sweep in the store (True when new; the same spec again is a resume): the one place a
    sweep is created, for the page, the CLI and any executor.

    `confine`: the dataset must lie inside the data roots (a sweep from the app never reads elsewhere);
    the CLI's user may name any folder of their own machine by its absolute path.
    """
    find = dataset_path_in_roots if confine else dataset_path_anywhere
    dataset = find(spec.data.dataset, settings.data_roots)
    if not dataset.exists():
        raise DatasetError(f"data.dataset: {spec.data.dataset} does not exist")
    with _launching(store, spec.name):
        return store.create_sweep(spec, decisions_version=DecisionLog(dataset).latest().version)


def start(store: RunStore, spec: SweepSpec, settings: Settings, executor: Executor = Executor(),
          user: str | None = None) -> None:
    """Record a sweep defined in the app and launch its driver, unless it runs or is done already."""
    create(store, spec, settings)
    with _launching(store, spec.name):
        if store.sweep(spec.name).status != SweepStatus.DONE:
            _launch_unless_driven(store, spec.name, executor, user)


def resume(store: RunStore, name: str, executor: Executor | None = None, user: str | None = None) -> None:
    """Launch a driver for what is left of the sweep (it then refits the best), unless one runs.

    `executor`: None resumes where its last driver ran its workers (a Ray sweep on Ray).
    `user` launched it ("" for nobody logged in); None (a restart's resume) keeps who did before.
    """
    with _launching(store, name):
        if executor is None:
            driver = store.sweep(name).driver
            executor = Executor.from_json(driver.executor) if driver else Executor()
        _launch_unless_driven(store, name, executor, user)


def _launch_unless_driven(store: RunStore, name: str, executor: Executor, user: str | None) -> None:
    if driver_alive(store.sweep(name)):
        return
    store.request_stop(name, False)
    if user is not None:
        store.set_launched_by(name, user)
    launch_detached(store, name, executor)


def claim(store: RunStore, name: str, executor: Executor = Executor()) -> None:
    """Make this process the sweep's driver, under the same lock as a launch: StoreError when another
    live process drives it already (a driver the page launched, a second `python -m core sweep`)."""
    with _launching(store, name):
        driver = store.sweep(name).driver
        if driver_alive(store.sweep(name)) and driver.pid != os.getpid():
            raise StoreError(f"sweep {name!r} is already running (driver pid {driver.pid} on {driver.host}); "
                             f"stop it first, or watch it: python -m core results {name}")
        store.set_driver(name, os.getpid(), executor.to_json())


def stop(store: RunStore, name: str, user: str = "") -> None:
    """Ask every worker of the sweep to stop after its current epoch; their trials are queued again."""
    store.set_stopped_by(name, user)
    store.request_stop(name)


def delete(store: RunStore, name: str) -> None:
    """Remove a sweep: its trials, its record and its artifact folder. A running sweep is refused:
    stop it first, so no worker writes into a sweep that no longer exists."""
    sweep = store.sweep(name)
    if driver_alive(sweep):
        raise StoreError(f"sweep {name!r} is running: stop it before deleting it")
    if beating := store.beating_trials(name):
        raise StoreError(f"sweep {name!r} has trial(s) {', '.join(map(str, beating))} running in a "
                         "worker (`python -m core worker`, here or on another machine): stop the sweep, and "
                         "delete it once that worker has stopped")
    store.delete_sweep(name)


def resume_unfinished(store: RunStore, executor: Executor | None = None) -> list[str]:
    """After a server restart: relaunch every sweep marked running whose driver is gone (`executor` None:
    each where its last driver ran its workers)."""
    resumed = []
    for name in store.sweep_names():
        try:
            sweep = store.sweep(name)
        except (ValueError, KeyError, TypeError) as error:     # a record other code wrote: not ours to run
            log.warning("not resuming sweep %r: its record cannot be read (%s)", name, error)
            continue
        if sweep.status == SweepStatus.RUNNING and not driver_alive(sweep):    # never FAILED ones
            resume(store, name, executor)
            resumed.append(name)
    return resumed
