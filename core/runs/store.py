"""The run store: sweeps, trials, metrics and artifacts, on Optuna's RDB storage.

One sweep is one Optuna study; its spec, status and final (refit) model record are study
attributes; each trial keeps its per-fold metrics and per-epoch curves as user attributes.
SQLite file by default, any SQLAlchemy URL (PostgreSQL) for a team. The store is the one
source of truth: the pages and the CLI read everything from here.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from core.settings import load_settings
from core.spec.sweep import SweepSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats are "experimental" in Optuna 5.0 but are what turns a killed worker's trial into a retry.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

# A SIGKILLed worker's trial turns FAIL (and is queued again) this long after its last heartbeat.
HEARTBEAT_S = int(os.environ.get("TRANSFERLAB_HEARTBEAT_S", "5"))
GRACE_S = int(os.environ.get("TRANSFERLAB_GRACE_S", "20"))
STATES = ("COMPLETE", "RUNNING", "WAITING", "PRUNED", "FAIL")
SURPLUS = "surplus"   # user attr of a trial started after every planned one was taken


class StoreError(ValueError):
    """A sweep is missing, or a name is taken by a different sweep."""


def _without_surplus(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Drop trials that racing workers started after every planned one was taken, and ended unrun."""
    return [t for t in trials if not t.user_attrs.get(SURPLUS)]


def _utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """Sweeps and trials in one database, plus an artifact folder for models."""

    def __init__(self, url: str | None = None, artifacts_dir: Path | None = None):
        settings = load_settings()
        self.url = url or settings.storage_url
        self.artifacts_dir = Path(artifacts_dir or settings.artifacts_dir)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        self.storage = RDBStorage(
            self.url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))

    # --- sweeps -------------------------------------------------------------------------
    def create_sweep(self, spec: SweepSpec) -> bool:
        """Create the sweep's study once (before any worker starts); True if it is new.

        Re-creating with the same spec is a resume; a different spec under the same name is
        refused, so two people never mix their trials in one study by accident.
        """
        existing = self._find(spec.name)
        if existing is not None:
            if existing.user_attrs.get("spec") != spec.to_dict():
                raise StoreError(f"a different sweep named {spec.name!r} already exists in {self.url_for_humans}; "
                                 "choose another name, or delete that sweep first")
            return False
        study = optuna.create_study(study_name=spec.name, storage=self.storage, direction="minimize")
        study.set_user_attr("spec", spec.to_dict())
        study.set_user_attr("created", _utcnow())
        study.set_user_attr("status", "created")
        return True

    def study(self, name: str, sampler: optuna.samplers.BaseSampler | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
        self._require(name)
        return optuna.load_study(study_name=name, storage=self.storage, sampler=sampler, pruner=pruner)

    def spec(self, name: str) -> SweepSpec:
        return SweepSpec.from_dict(self._require(name).user_attrs["spec"])

    def sweep_names(self) -> list[str]:
        return [s.study_name for s in self.storage.get_all_studies()]

    def sweeps(self) -> pd.DataFrame:
        """One row per sweep: counts by state, best value, status, when created."""
        rows = []
        for summary in self.storage.get_all_studies():
            study_id = summary._study_id
            trials = _without_surplus(self.storage.get_all_trials(study_id, deepcopy=False))
            counts = {s: sum(t.state.name == s for t in trials) for s in STATES}
            values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
            attrs = summary.user_attrs
            spec = SweepSpec.from_dict(attrs["spec"]) if "spec" in attrs else None
            rows.append({"sweep": summary.study_name, "status": attrs.get("status", "?"),
                         "created": attrs.get("created", ""), "planned": spec.grid_size() if spec else None,
                         **{s.lower(): counts[s] for s in STATES},
                         "best_error": min(values) if values else None})
        return pd.DataFrame(rows, columns=["sweep", "status", "created", "planned", *[s.lower() for s in STATES],
                                           "best_error"])

    def set_status(self, name: str, status: str) -> None:
        self._set_study_attr(name, "status", status)

    def status(self, name: str) -> str:
        return self._require(name).user_attrs.get("status", "?")

    def request_stop(self, name: str, stop: bool = True) -> None:
        """Ask every worker of the sweep to stop after its current epoch (False clears it)."""
        self._set_study_attr(name, "stop_requested", stop)

    def stop_requested(self, name: str) -> bool:
        return bool(self._require(name).user_attrs.get("stop_requested", False))

    def set_driver(self, name: str, pid: int) -> None:
        """Which process drives the sweep, so a restarted server can tell whether to resume it."""
        self._set_study_attr(name, "driver", {"host": socket.gethostname(), "pid": pid, "since": _utcnow()})

    def driver(self, name: str) -> dict:
        return self._require(name).user_attrs.get("driver") or {}

    def set_final(self, name: str, record: dict) -> None:
        """The refit best model: its trial, parameters, artifact paths and test evaluation."""
        self._set_study_attr(name, "final", record)

    def final(self, name: str) -> dict | None:
        return self._require(name).user_attrs.get("final")

    def delete_sweep(self, name: str) -> None:
        optuna.delete_study(study_name=name, storage=self.storage)

    def artifact_dir(self, name: str) -> Path:
        folder = self.artifacts_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def version(self, name: str) -> tuple[int, int, str]:
        """Changes whenever a trial starts, ends or the final model is written: a cache key for views."""
        summary = self._require(name)
        trials = self.storage.get_all_trials(summary._study_id, deepcopy=False)
        finished = sum(t.state.is_finished() for t in trials)
        return len(trials), finished, json.dumps(summary.user_attrs.get("final", {}).get("created", ""))

    # --- trials -------------------------------------------------------------------------
    def trials(self, name: str) -> list[FrozenTrial]:
        return _without_surplus(self.storage.get_all_trials(self._require(name)._study_id))

    def trials_frame(self, names: list[str] | str) -> pd.DataFrame:
        """One row per trial: state, mean CV error and spread, fold errors, swept params, timing."""
        rows = []
        for name in [names] if isinstance(names, str) else names:
            for t in self.trials(name):
                result = t.user_attrs.get("result", {})
                folds = result.get("folds", [])
                duration = (t.datetime_complete - t.datetime_start).total_seconds() \
                    if t.datetime_complete and t.datetime_start else None
                rows.append({"sweep": name, "number": t.number, "state": t.state.name,
                             "value": t.value if t.state == TrialState.COMPLETE else None,
                             "value_std": result.get("value_std"),
                             "fold_errors": [f["val_error"] for f in folds],
                             **t.params, "duration_s": duration, "cache": result.get("cache", ""),
                             "error": t.user_attrs.get("error", "")})
        return pd.DataFrame(rows)

    def trial_record(self, name: str, number: int) -> dict[str, Any]:
        """Everything kept for one trial: params, per-fold results and curves, live progress."""
        for t in self.trials(name):
            if t.number == number:
                return {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                        **t.user_attrs}
        raise StoreError(f"sweep {name!r} has no trial {number}")

    # --- helpers ------------------------------------------------------------------------
    @property
    def url_for_humans(self) -> str:
        """The URL without a password, for messages."""
        from sqlalchemy.engine import make_url
        return make_url(self.url).render_as_string(hide_password=True)

    def _find(self, name: str):
        for summary in self.storage.get_all_studies():
            if summary.study_name == name:
                return summary
        return None

    def _require(self, name: str):
        summary = self._find(name)
        if summary is None:
            known = ", ".join(self.sweep_names()) or "none yet"
            raise StoreError(f"no sweep named {name!r} in {self.url_for_humans} (sweeps there: {known})")
        return summary

    def _set_study_attr(self, name: str, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(self._require(name)._study_id, key, value)
