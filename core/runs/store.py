"""The run store: sweeps, trials, metrics and artifacts, on Optuna's RDB storage.

One sweep is one Optuna study; its spec, status and final (refit) model are study attributes;
each trial keeps its result and live progress as user attributes. SQLite file by default, any
SQLAlchemy URL (PostgreSQL) for a team. Files (out-of-fold scores, fold and final models) go to the
artifact store (`core.runs.artifacts`), which every machine of a sweep reaches. The store is the one
source of truth, and the only code that knows how a record is kept: it hands out the typed records of
`core.runs.records`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import socket
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import optuna
import pandas as pd
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from core.runs.artifacts import OOF_FILE, Artifacts, payload, refs, written_to
from core.runs.optuna_storage import StoreFile, open_storage
from core.runs.records import (
    BudgetClock,
    Driver,
    FinalModel,
    LiveProgress,
    OutOfFold,
    StepProgress,
    SweepRecord,
    SweepStatus,
    TrialRecord,
    TrialResult,
    TrialState,
)
from core.runs.store_attrs import BAD_RECORD, Attr, spec_as_read_now, sweep_record, trial_record, why_unreadable
from core.runs.store_messages import StoreError, url_for_humans
from core.runs.store_queries import StateCounts, counts_by_state, trial_counts
from core.runs.trials_table import trials_frame
from core.settings import load_settings
from core.spec.sweep import SweepSpec

T = TypeVar("T")


def _utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """Sweeps and trials in one database, plus an artifact store for their files.

    `artifacts`: the artifact store (a folder or s3://...; default: `artifacts_dir` when given, else the
    settings'); `artifacts_dir`: this machine's folder of sweep files (logs, runs from before the store).
    """

    def __init__(self, url: str | None = None, artifacts_dir: Path | None = None, artifacts: str | None = None):
        settings = load_settings()
        self.url = url or settings.storage_url
        self.artifacts_dir = Path(artifacts_dir or settings.artifacts_dir)
        location = artifacts or (str(artifacts_dir) if artifacts_dir else settings.artifacts)
        self.artifacts = Artifacts(location, settings.cache_dir / "artifacts", self.artifacts_dir)
        database = make_url(self.url).database if self.url.startswith("sqlite") else None
        if database and not database.startswith("file:") and database != ":memory:":   # not a URI or in memory
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self.storage = open_storage(self.url)
        self.file = StoreFile.of(self.url)     # a SQLite store's file as opened, to notice it deleted or replaced
        self._ids: dict[str, int] = {}     # sweep name -> study id: one lookup per name, not per call
        self._live: dict[int, str | None] = {}   # trial id -> the artifact of the live record it wrote last

    def file_change(self) -> str:
        """What happened to a SQLite store's file since this store opened it ("" nothing, or not a file)."""
        return self.file.change() if self.file else ""

    # --- sweeps -------------------------------------------------------------------------
    def create_sweep(self, spec: SweepSpec, decisions_version: int = 0) -> bool:
        """Create the sweep's study once (before any worker starts); True if it is new. `decisions_version`:
        the dataset's label decisions it trains on, kept for its resumes (a resume keeps the first one).

        Re-creating with the same spec is a resume; a different spec under the same name is
        refused, so two people never mix their trials in one study by accident.
        """
        if self._study_id(spec.name) is not None:
            if spec_as_read_now(self.artifacts.full(self._attrs(spec.name).get(Attr.SPEC))) != spec.to_dict():
                raise StoreError(f"a different sweep named {spec.name!r} already exists in {self.url_for_humans}; "
                                 "choose another name, or delete that sweep first")
            return False
        study = optuna.create_study(study_name=spec.name, storage=self.storage, direction="minimize")
        study.set_user_attr(Attr.SPEC, self.artifacts.outline(spec.to_dict(), Attr.SPEC, {"name": spec.name}))
        study.set_user_attr(Attr.CREATED, _utcnow())
        study.set_user_attr(Attr.STATUS, SweepStatus.CREATED.value)
        study.set_user_attr(Attr.DECISIONS, decisions_version)
        return True

    def study(self, name: str, sampler: optuna.samplers.BaseSampler | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
        self._require(name)
        return optuna.load_study(study_name=name, storage=self.storage, sampler=sampler, pruner=pruner)

    def sweep(self, name: str) -> SweepRecord:
        """Everything kept for the sweep itself, in one query."""
        return sweep_record(name, self._full(self._attrs(name)))

    def spec(self, name: str) -> SweepSpec:
        return SweepSpec.from_dict(self.artifacts.full(self._attrs(name)[Attr.SPEC]))

    def sweep_names(self) -> list[str]:
        return [s.study_name for s in self.storage.get_all_studies()]

    def sweep_problems(self) -> dict[str, str | None]:
        """Every sweep's name with why its record cannot be shown (written by other code or an older version;
        None: it can), from one read of every sweep's attributes."""
        problems = {}
        for summary in self.storage.get_all_studies():
            try:
                attrs = self._full(summary.user_attrs)
            except BAD_RECORD as error:
                problems[summary.study_name] = str(error)
            else:
                problems[summary.study_name] = why_unreadable(summary.study_name, attrs)
        return problems

    def sweeps(self) -> pd.DataFrame:
        """One row per sweep: counts by state, best value, status, when created."""
        rows = []
        tallies = counts_by_state(self.storage.engine, left_out=Attr.SURPLUS)    # every sweep's, one query
        for summary in self.storage.get_all_studies():
            tally = tallies.get(summary.study_name, StateCounts())
            sweep = sweep_record(summary.study_name, self._full(summary.user_attrs))
            planned = SweepSpec.from_dict(sweep.spec).planned_trials() if sweep.spec else None
            by_state = {s.value.lower(): tally.by_state.get(s.value, 0) for s in TrialState}
            rows.append({"sweep": sweep.name, "status": sweep.status.value, "created": sweep.created,
                         "planned": planned, **by_state, "best_error": tally.best})
        return pd.DataFrame(rows, columns=["sweep", "status", "created", "planned",
                                           *[s.value.lower() for s in TrialState], "best_error"])

    def set_status(self, name: str, status: SweepStatus) -> None:
        """Any status but FAILED clears the failure reason: the sweep is being tried again."""
        if status != SweepStatus.FAILED:
            self._set_study_attr(name, Attr.FAILURE, "")
        self._set_study_attr(name, Attr.STATUS, SweepStatus(status).value)

    def set_failed(self, name: str, reason: str) -> None:
        """The sweep cannot go on for a reason a retry would not fix; it is not relaunched."""
        self.set_status(name, SweepStatus.FAILED)
        self._set_study_attr(name, Attr.FAILURE, reason)

    def set_step(self, name: str, step: StepProgress | None) -> None:
        """The driver's long step after the trials (refit, test evaluation); None when it is over."""
        self._set_study_attr(name, Attr.STEP, step.to_json() if step else None)

    def set_clock(self, name: str, clock: BudgetClock) -> None:
        """The sweep's time-budget clock: where it counts from, and why the budget cut the sweep short."""
        self._set_study_attr(name, Attr.CLOCK, clock.to_json())

    def set_launched_by(self, name: str, user: str) -> None:
        """Who launched (or resumed) the sweep last."""
        self._set_study_attr(name, Attr.LAUNCHED_BY, user)

    def set_stopped_by(self, name: str, user: str) -> None:
        self._set_study_attr(name, Attr.STOPPED_BY, user)

    def status(self, name: str) -> SweepStatus:
        return self.sweep(name).status

    def request_stop(self, name: str, stop: bool = True) -> None:
        """Ask every worker of the sweep to stop after its current epoch (False clears it)."""
        self._set_study_attr(name, Attr.STOP, stop)

    def stop_requested(self, name: str) -> bool:
        return bool(self._attrs(name).get(Attr.STOP, False))

    def set_driver(self, name: str, pid: int, executor: dict[str, Any] | None = None) -> None:
        """Which process drives the sweep, and where its workers run, so a restarted server can tell whether
        to resume it, and resume it alike."""
        driver = Driver(socket.gethostname(), pid, _utcnow(), executor or {})
        self._set_study_attr(name, Attr.DRIVER, driver.to_json())

    def set_final(self, name: str, record: FinalModel) -> None:
        """The refit best model: its trial, parameters, model files and test evaluation. The files of a
        final model it replaces (one of an earlier best trial) leave the artifact store."""
        before, kept = self.final(name), self._attrs(name).get(Attr.FINAL)
        self._set_study_attr(name, Attr.FINAL, self.artifacts.outline(record.to_json(), Attr.FINAL, {
            "trial": record.trial, "chosen": record.chosen, "test_accuracy": record.test_accuracy,
            "created": record.created}))           # `version` reads the last two
        for ref in set(before.model_files() if before else ()) - set(record.model_files()) | {payload(kept)}:
            if ref:
                self.artifacts.remove(ref)

    def final(self, name: str, local: bool = False) -> FinalModel | None:
        """The sweep's final model; `local`: its model paths are local files (the artifact cache), to load."""
        final = self.sweep(name).final
        if not (final and local):
            return final
        where = written_to(self._attrs(name).get(Attr.FINAL))            # its model files went there too
        return final.with_paths(lambda ref: self.model_file(ref, where))

    def keep_final_file(self, name: str, path: Path) -> str:
        """Put a final model file (written locally at `path`) in the artifact store, listed under the
        sweep's study; returns the reference its record keeps."""
        return self.artifacts.keep(path, self.study(name))

    def model_file(self, ref: str, where: str | None = None) -> Path:
        """A local file of a model a record refers to (downloaded once into the cache; `where`: the store
        its writer used, `Artifacts.local`). One the store has lost is a path that does not exist, as a
        deleted file was before: loading it says so."""
        try:
            return self.artifacts.local(ref, where)
        except ArtifactNotFound:
            return Path(ref)

    def choose_final_variant(self, name: str, variant: str) -> FinalModel:
        """Make `variant` (a `records.VARIANTS` name the final model has) the one Predict and export use."""
        final = self.final(name)
        if final is None:
            raise StoreError(f"sweep {name!r} has no final model yet")
        try:
            chosen = final.choose(variant)
        except ValueError as error:
            raise StoreError(f"sweep {name!r}: {error}") from None
        self.set_final(name, chosen)
        return chosen

    def delete_sweep(self, name: str) -> None:
        """The sweep's study, its files in the artifact store and this machine's folder of it."""
        study_id = self._require(name)
        found = refs(self.storage.get_study_system_attrs(study_id))
        found += [payload(v) for v in self.storage.get_study_user_attrs(study_id).values()]
        for t in self._frozen(name):
            found += refs(t.system_attrs) + [payload(v) for v in t.user_attrs.values()]
        optuna.delete_study(study_name=name, storage=self.storage)
        self._ids.pop(name, None)
        for ref in filter(None, found):
            self.artifacts.remove(ref)
        shutil.rmtree(self.artifacts_dir / name, ignore_errors=True)

    def local_folder(self, name: str) -> Path:
        """This machine's own files of the sweep: its driver's and workers' logs, the launch lock."""
        return self.artifacts.local_folder(name)

    def version(self, name: str) -> tuple[int, int, str]:
        """Changes whenever a trial starts, ends, the final model is written or its variant chosen: a cache
        key for views. One query, not a read of every trial."""
        counts = self._read(name, lambda study_id: trial_counts(self.storage.engine, study_id, Attr.FINAL))
        final = counts.attribute or {}
        return counts.trials, counts.finished, json.dumps([final.get("created", ""), final.get("chosen", "")])

    # --- trials -------------------------------------------------------------------------
    def trials(self, name: str) -> list[TrialRecord]:
        """Every trial of the sweep, in order, but those racing workers started surplus and never ran."""
        full = self.artifacts.full
        return [trial_record(name, t, full) for t in self._frozen(name) if not t.user_attrs.get(Attr.SURPLUS)]

    def trial(self, name: str, number: int) -> TrialRecord:
        """Everything kept for one trial: params, per-fold results and curves, live progress (that trial's
        attributes read and parsed, not every trial's)."""
        try:
            frozen = self._frozen_trial(name, number)
        except KeyError:
            frozen = None
        if frozen is None or frozen.user_attrs.get(Attr.SURPLUS):
            raise StoreError(f"sweep {name!r} has no trial {number}")
        return trial_record(name, frozen, self.artifacts.full)

    def trials_frame(self, names: list[str] | str) -> pd.DataFrame:
        """One row per trial (`trials_table.TRIAL_COLUMNS`): state, CV error and spread, swept params, timing."""
        return trials_frame([t for name in ([names] if isinstance(names, str) else names)
                             for t in self.trials(name)])

    # --- what a worker writes about the trial it runs --------------------------------------
    def set_result(self, trial: optuna.Trial, result: TrialResult) -> None:
        """The trial's folds into the database; its out-of-fold scores into the artifact store."""
        if result.oof is not None:
            with self.artifacts.scratch() as folder:
                result.oof.save(folder / OOF_FILE)
                self.artifacts.keep(folder / OOF_FILE, trial)
        summary = {"value": result.value, "value_std": result.value_std, "folds": len(result.folds),
                   "cache": result.cache}
        trial.set_user_attr(Attr.RESULT, self.artifacts.outline(result.to_json(), Attr.RESULT, summary))

    def oof(self, name: str, *numbers: int) -> OutOfFold | None:
        """A completed trial's out-of-fold scores, or several trials' averaged; None where one kept none."""
        paths = [self.artifacts.oof_file(self._frozen_trial(name, number), name) for number in numbers]
        if not paths or not all(paths):
            return None
        oofs = [OutOfFold.load(path) for path in paths]
        return dataclasses.replace(oofs[0], scores=np.mean([oof.scores for oof in oofs], axis=0))

    def keep_fold_files(self, trial: optuna.Trial, folder: Path) -> None:
        """Put the files of a fold model the running trial just trained (written in `folder`) in the
        artifact store, for the final fold ensemble."""
        for path in sorted(folder.iterdir()):
            self.artifacts.keep(path, trial)

    def fold_models_dir(self, name: str, number: int) -> Path | None:
        """A local folder holding the fold models a network trial of a sweep with `ensemble` kept (from
        the artifact store, whichever machine ran it); None when it kept none or they were dropped."""
        return self.artifacts.fold_folder(self._frozen_trial(name, number), name)

    def drop_fold_models(self, name: str, keep: Collection[int] = ()) -> None:
        """Delete the fold models of every finished trial but those numbered in `keep` (the final ensemble's
        candidates); a running trial's stay."""
        done = {t.number for t in self.trials(name) if t.state != TrialState.RUNNING and t.number not in keep}
        for t in self._frozen(name):
            if t.number in done:
                self.artifacts.drop_folds(t, name)

    def set_live(self, trial: optuna.Trial, live: LiveProgress) -> None:
        """A running trial's progress; long curves in a new artifact each time, the one before removed."""
        kept = self.artifacts.outline(live.to_json(), Attr.LIVE, {"fold": live.fold, "epoch": live.epoch,
                                                              "epochs_done": live.epochs_done})
        trial.set_user_attr(Attr.LIVE, kept)
        if (before := self._live.get(trial._trial_id)) is not None:
            self.artifacts.remove(before)
        self._live[trial._trial_id] = payload(kept)

    @staticmethod
    def set_error(trial: optuna.Trial, error: str) -> None:
        trial.set_user_attr(Attr.ERROR, error)

    @staticmethod
    def mark_surplus(trial: optuna.Trial) -> None:
        """The trial was started after every planned one was taken: it ends unrun and is left out."""
        trial.set_user_attr(Attr.SURPLUS, True)

    def requeue(self, name: str, number: int) -> None:
        """Queue an interrupted trial again (a WAITING copy, as Optuna's heartbeat retry makes)."""
        study_id = self._require(name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        RetryHeartbeatStaleTrialCallback()(self.study(name), self.storage.get_trial(trial_id))

    def fail_stale_trials(self, name: str) -> None:
        """Trials whose worker stopped beating its heartbeat turn FAIL, and are queued again."""
        optuna.storages.fail_stale_trials(self.study(name))

    # --- helpers ------------------------------------------------------------------------
    @property
    def url_for_humans(self) -> str:
        """The URL without a password, for messages."""
        return url_for_humans(self.url)

    def _study_id(self, name: str) -> int | None:
        if name not in self._ids:
            try:
                self._ids[name] = self.storage.get_study_id_from_name(name)
            except KeyError:
                return None
        return self._ids[name]

    def _require(self, name: str) -> int:
        study_id = self._study_id(name)
        if study_id is None:
            known = ", ".join(self.sweep_names()) or "none yet"
            raise StoreError(f"no sweep named {name!r} in {self.url_for_humans} (sweeps there: {known})")
        return study_id

    def _read(self, name: str, read: Callable[[int], T]) -> T:
        """`read(study id)`, looking the id up again once if the study was deleted and made anew."""
        try:
            return read(self._require(name))
        except KeyError:
            self._ids.pop(name, None)
            return read(self._require(name))

    def _full(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Attributes with each one an artifact stands for read back (`Artifacts.outline`)."""
        return {key: self.artifacts.full(value) for key, value in attrs.items()}

    def _attrs(self, name: str) -> dict[str, Any]:
        return self._read(name, self.storage.get_study_user_attrs)

    def _frozen(self, name: str) -> list[FrozenTrial]:
        return self._read(name, lambda study_id: self.storage.get_all_trials(study_id, deepcopy=False))

    def _frozen_trial(self, name: str, number: int) -> FrozenTrial:
        def read(study_id: int) -> FrozenTrial:
            return self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(study_id, number))
        return self._read(name, read)

    def _set_study_attr(self, name: str, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(self._require(name), key, value)

    def beating_trials(self, name: str) -> list[int]:
        """The sweep's RUNNING trials whose worker, on any machine, still beats its heartbeat (the storage's
        stale-trial rule): a worker is at work on them, whether or not a driver runs."""
        study_id = self._require(name)
        stale = set(self.storage._get_stale_trial_ids(study_id))     # the rule of `optuna_storage._Storage`
        return [t.number for t in self._frozen(name) if t.state == optuna.trial.TrialState.RUNNING
                and self.storage.get_trial_id_from_study_id_trial_number(study_id, t.number) not in stale]
