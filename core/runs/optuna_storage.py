"""Optuna's RDB storage as the run store opens it: heartbeats that turn a killed worker's trial into a
retry, a stale-trial rule Optuna lacks, a retry of the schema race between two first openings, and a
SQLite store's file kept from silent replacement: made only by a first opening, never again where one
was, and its identity kept to notice it deleted or replaced under a running server."""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats are "experimental" in Optuna 5.0 but are what turns a killed worker's trial into a retry.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

# A SIGKILLed worker's trial turns FAIL (and is queued again) this long after its last heartbeat.
HEARTBEAT_S = int(os.environ.get("TRANSFERLAB_HEARTBEAT_S", "5"))
GRACE_S = int(os.environ.get("TRANSFERLAB_GRACE_S", "20"))
MAX_RETRY = 3
SCHEMA_ATTEMPTS = 5        # openings of a new database racing another process's (`open_storage`)


class _Storage(RDBStorage):
    """Optuna's RDB storage, which also counts as stale a RUNNING trial that never recorded a
    heartbeat and started more than the grace period ago. Its process died between creating the
    trial and its first heartbeat (a SIGKILL at that instant); Optuna skips such trials, so a
    resumed sweep waited for it forever. Optuna offers no public hook for this, hence the override."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        cutoff = dt.datetime.now() - dt.timedelta(seconds=self.grace_period or 0)   # Optuna's naive local times
        old = {self.get_trial_id_from_study_id_trial_number(study_id, t.number)
               for t in self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
               if t.datetime_start and t.datetime_start < cutoff} - set(stale)
        if not old:
            return stale
        beating = sqlalchemy.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
            sqlalchemy.bindparam("ids", expanding=True))        # the heartbeat table of Optuna's own schema
        with self.engine.connect() as connection:
            return stale + sorted(old - {row[0] for row in connection.execute(beating, {"ids": sorted(old)})})


def open_storage(url: str) -> _Storage:
    """Optuna's storage on `url`. Opening a database makes Optuna's tables and stamps their version when
    they are missing, and two processes opening a new one at once (the server and a CLI driver) race on
    that: the loser meets "table ... already exists" or a duplicate version stamp. The winner has made
    the schema by then (or is about to), so the loser opens the database again, a few times at most."""
    path = database_file(url)
    if path:
        _make_once(path)
        engine: dict = _never_creating(path)
    else:
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}

    def open_() -> _Storage:
        return _Storage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    for attempt in range(SCHEMA_ATTEMPTS - 1):
        try:
            return open_()
        except (OperationalError, IntegrityError) as error:
            if "already exists" not in str(error) and "alembic_version" not in str(error):
                raise
            time.sleep(0.1 * (attempt + 1))
    return open_()


class StoreFileMissing(FileNotFoundError):
    """A SQLite store's file is gone where a store was made: not replaced by an empty one."""


def made_marker(path: Path) -> Path:
    """The file beside a SQLite store saying when a store was made there (it outlives a deleted store)."""
    return path.with_name(path.name + ".made")


def _make_once(path: Path) -> None:
    """Make a new store's empty file, unless its marker says one was made there before: then a missing
    file is a deleted store, and every process that opens it (the server after a restart, a driver) says
    so rather than start an empty store that hides every sweep."""
    marker = made_marker(path)
    made_before = marker.exists()       # looked at first: a racing first opening makes the file, then this
    if not path.exists():
        if made_before:
            made = marker.read_text(errors="replace").strip() or "earlier"
            raise StoreFileMissing(f"{path} is missing, but a run store was made there on {made}: restore "
                                   f"it, or delete {marker} to start a new, empty store")
        path.touch()                    # an empty file is an empty SQLite database
    if not made_before:
        try:
            marker.write_text(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds") + "\n")
        except OSError:          # a read-only folder: the store works, only unguarded against replacement
            pass


def _never_creating(path: Path) -> dict:
    """Engine options whose every connection opens the store's file read-write and never makes it (SQLite's
    `mode=rw`): a connection opened after the file was deleted fails, instead of starting an empty
    database at the path while the open ones go on reading the deleted file."""
    uri = f"{path.resolve().as_uri()}?mode=rw"
    return {"creator": lambda: sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)}


def database_file(url: str) -> Path | None:
    """The file of a SQLite store; None for another database, one in memory, or a `file:` URI."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    in_file = database and not database.startswith("file:") and database != ":memory:"
    return Path(database) if in_file else None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


@dataclass(frozen=True)
class StoreFile:
    """A SQLite store's file as it was opened. Deleted, the open connections keep reading the old file
    while every new one (a driver, a resume) silently makes an empty database at the path; so the
    store's users ask `change()` before trusting it."""

    path: Path
    identity: tuple[int, int]          # (device, inode) when opened

    @classmethod
    def of(cls, url: str) -> StoreFile | None:
        """The file of a SQLite store just opened (None: not a file)."""
        path = database_file(url)
        identity = _identity(path) if path else None
        return cls(path.resolve(), identity) if path and identity else None

    def change(self) -> str:
        """What happened to the file since it was opened: "" (nothing), deleted, or replaced."""
        now = _identity(self.path)
        if now is None:
            return "was deleted (or moved away) after this server opened it"
        return "" if now == self.identity else "was replaced by another file after this server opened it"
