"""Optuna's RDB storage as the run store opens it: heartbeats that turn a killed worker's trial into a
retry, a stale-trial rule Optuna lacks, a retry of the schema race between two first openings, and the
identity of a SQLite store's file, to notice it deleted or replaced under a running server."""
from __future__ import annotations

import datetime as dt
import os
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


def database_file(url: str) -> Path | None:
    """The file of a SQLite store; None for another database, one in memory, or a `file:` URI."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    return Path(database) if database and not database.startswith("file:") and database != ":memory:" else None


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
