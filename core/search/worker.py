"""A worker: takes the sweep's next trial from the store, runs it on the training wing, records it.

Any number of workers, on any machine that reaches the store, can work on one sweep: Optuna's
storage hands each its next trial.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna

from core.data.datasets import DatasetError
from core.data.images import CPUS_VARIABLE, usable_cpus
from core.data.splits import SplitError
from core.models.weights import WeightsNotFoundError
from core.progress import Progress, Say
from core.runs.records import LiveProgress, StepProgress
from core.runs.store import RunStore, StoreError
from core.search.deadline import OutOfTime, trial_deadline
from core.search.ensemble_members import ensemble_candidates
from core.search.oracle import (is_surplus, make_pruner, make_sampler, remaining_trials, repeated_work,
                                suggest)
from core.search.time_left import describe_seconds, step_seconds_left
from core.search.trial_cost import TrialCost
from core.spec.sweep import SpecError, TrialParams
from core.training.kinds import keeps_fold_models, run_trial
from core.training.plan import SweepData
from core.training.schedules import planned_epochs

log = logging.getLogger(__name__)
STEP_WRITE_S = float(os.environ.get("TRANSFERLAB_STEP_WRITE_S", "3"))   # a long step's store writes, apart


class StopRequested(Exception):
    """Someone pressed Stop: the running trial is queued again and the worker exits."""


class EveryTrialFailed(RuntimeError):
    """Not one trial of the sweep completed: there is nothing to refit."""


# OSErrors a retry cannot fix: a folder the sweep must write to is unwritable or full.
_FATAL_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def fatal_reason(error: BaseException) -> str | None:
    """Why the whole sweep cannot go on, when `error` is one that running it again would meet
    again (its data, its spec, missing weights, an unwritable folder); None otherwise."""
    if isinstance(error, (DatasetError, SplitError, SpecError, WeightsNotFoundError, EveryTrialFailed)):
        return str(error)
    if isinstance(error, OSError) and error.errno in _FATAL_ERRNOS:
        where = f": {error.filename}" if error.filename else ""
        return f"cannot write{where} ({error.strerror})"
    return None


@dataclass
class Watch:
    """What a worker tells whoever watches it in the same process (the CLI's progress bars)."""

    say: Say = log.info                                   # one-off messages
    stage: Say = lambda _: None                           # the current step, replaced as work goes on
    trial_done: Callable[[], None] = lambda: None


def throttled_step(label: str, every_s: float, write: Callable[[StepProgress], None]
                   ) -> Callable[[int, int], StepProgress]:
    """A (done, total) progress callback for one long step: each call makes the step's progress (its rate
    so far) and returns it; `write` gets it at most every `every_s` seconds and when the step ends, so
    a PostgreSQL store is not hammered by a pass that reports every few images."""
    started, last = time.monotonic(), -math.inf

    def progress(done: int, total: int) -> StepProgress:
        nonlocal last
        now = time.monotonic()
        step = StepProgress(label, done, total, rate=done / max(now - started, 1e-6))
        if done >= total or now - last >= every_s:
            last = now
            write(step)
        return step
    return progress


@contextmanager
def sweep_step(store: RunStore, name: str, label: str, every_s: float = STEP_WRITE_S
               ) -> Iterator[Callable[[int, int], StepProgress]]:
    """A progress callback for a long step of the sweep's driver outside its trials (a weights download,
    the refit), written to the sweep's record (`throttled_step`) and cleared at the end."""
    try:
        yield throttled_step(label, every_s, lambda step: store.set_step(name, step))
    finally:
        store.set_step(name, None)


class LiveWriter:
    """Writes a running trial's live progress to the store: after every epoch, and while a long step
    runs at most every `every_s` seconds (and when it ends)."""

    def __init__(self, store: RunStore, trial: optuna.Trial, live: LiveProgress, every_s: float = STEP_WRITE_S):
        self.store, self.trial, self.live, self.every_s = store, trial, live, every_s

    def step(self, label: str) -> Callable[[int, int], StepProgress]:
        """A progress callback for one long step of the trial (`throttled_step`)."""
        return throttled_step(label, self.every_s, self._write_step)

    def _write_step(self, step: StepProgress) -> None:
        self.live.step = step
        self.store.set_live(self.trial, self.live)

    def epoch(self, fold: int, epoch: int, logs: dict[str, float]) -> None:
        live = self.live
        fold_curves = live.curves.setdefault(f"fold {fold + 1}", {})
        for key, value in logs.items():
            fold_curves.setdefault(key, []).append(value)
        live.fold, live.epoch, live.step = fold, epoch, None
        live.epochs_done += 1
        live.last_epoch_at = time.time()
        live.first_epoch_at = live.first_epoch_at or live.last_epoch_at
        self.store.set_live(self.trial, live)


class Objective:
    """Optuna objective: one configuration's K-fold CV error, with live curves written per epoch."""

    def __init__(self, store: RunStore, name: str, data: SweepData, watch: Watch | None = None):
        self.store, self.name, self.data, self.spec = store, name, data, data.spec
        self.watch = watch or Watch()

    def __call__(self, trial: optuna.Trial) -> float:
        if is_surplus(self.store.trials(self.name), self.spec, trial.number):
            self.store.mark_surplus(trial)
            trial.study.stop()
            raise optuna.TrialPruned("surplus: every planned trial is taken")
        params = self.spec.trial_params(suggest(trial, self.spec))
        twin = repeated_work(self.store.trials(self.name), self.spec, params)
        if twin is not None:            # nothing this trial would fit that trial `twin` has not: left out
            self.watch.say(f"trial {trial.number}: the same fit as trial {twin} (kind {params.kind} on frozen "
                           "features reads none of the fields that differ), not fitted again")
            self.store.set_error(trial, f"not fitted: the same fit as trial {twin}")
            raise optuna.TrialPruned(f"the same fit as trial {twin}")
        try:
            deadline = trial_deadline(self.store, self.name, trial.number, params, len(self.data.folds))
        except OutOfTime as out:            # the time budget: too little left for this trial, none starts after it
            self.watch.say(str(out))
            self.store.mark_surplus(trial)
            trial.study.stop()
            raise optuna.TrialPruned(str(out)) from None
        epochs = planned_epochs(params) if params.trains_network else 0
        live = LiveWriter(self.store, trial,
                          LiveProgress(fold=0, epoch=0, folds=len(self.data.folds), epochs=epochs))
        cost = TrialCost()
        runner = self.data.runner(params, decode_progress=self._step(live, trial, "decoding images"),
                                  cache_progress=cost.watch(self._step(live, trial, "backbone activations")))
        runner.deadline = deadline
        try:
            result = run_trial(runner, params, self.data.base_cut(params), self._reporter(trial, params, live),
                               fold_progress=self._step(live, trial, f"{params.kind} folds"),
                               on_fold=self._fold_saver(trial, params))
        except (optuna.TrialPruned, StopRequested):
            raise
        except Exception as error:  # a broken configuration fails its trial, not the sweep
            if not sweep_exists(self.store, self.name):     # deleted under this worker: `run_worker` says so
                raise
            if fatal_reason(error):         # a known cause (missing weights, bad data): its line says it all
                log.warning("trial %s failed: %s", trial.number, error)
            else:
                log.exception("trial %s failed", trial.number)
            self.store.set_error(trial, f"{type(error).__name__}: {error}")
            return float("nan")
        try:
            self.store.set_result(trial, cost.recorded(result, params, runner))
        except OSError as error:        # an unwritable or full folder: the trial keeps why, the sweep fails
            self.store.set_error(trial, f"{type(error).__name__}: {error}")
            raise
        return result.value

    def _fold_saver(self, trial: optuna.Trial, params: TrialParams) -> Callable | None:
        """With the sweep's `ensemble`, each fold model is kept for the final fold ensemble."""
        if not (self.spec.ensemble and keeps_fold_models(params)):
            return None
        from core.training.ensembles import save_fold_model

        def keep(trained) -> None:
            with self.store.artifacts.scratch() as folder:
                save_fold_model(folder, trained)
                self.store.keep_fold_files(trial, folder)
        return keep

    def _step(self, live: LiveWriter, trial: optuna.Trial, label: str) -> Progress:
        """Progress of a long step: to the store (a few seconds apart) and to the in-process watcher."""
        write = live.step(label)

        def progress(done: int, total: int) -> None:
            step = write(done, total)
            self.watch.stage(f"trial {trial.number}: {label} {done}/{total}, {step.rate:.0f}/s, "
                             f"{describe_seconds(step_seconds_left(step))} left")
        return progress

    def _reporter(self, trial: optuna.Trial, params: TrialParams, live: LiveWriter):
        def report(fold: int, epoch: int, logs: dict[str, float]) -> None:
            live.epoch(fold, epoch, logs)
            accuracy = logs.get("val_accuracy", logs.get("accuracy", float("nan")))
            self.watch.stage(f"trial {trial.number}: fold {fold + 1}/{len(self.data.folds)}, epoch {epoch + 1}/"
                             f"{planned_epochs(params)}, validation accuracy {accuracy:.3f}")
            error = live.live.epoch_error(epoch)         # step = epoch of the folds' averaged curve
            if error is not None:
                trial.report(error, step=epoch)
                if self.spec.search.pruning and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch + 1} of the folds' averaged curve")
            if self.store.stop_requested(self.name):
                self.store.requeue(self.name, trial.number)
                raise StopRequested(f"sweep {self.name!r}: stop requested")
        return report


def use_task_cpus() -> None:
    """In a cluster engine's task (TRANSFERLAB_CPUS set), TensorFlow's thread pools take the task's CPUs, not
    the node's: tasks sharing a node would otherwise each start a thread per core. Before TensorFlow starts."""
    if CPUS_VARIABLE not in os.environ:
        return
    import tensorflow as tf
    cpus = usable_cpus()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:            # TensorFlow already ran in this process: its pools stay as they are
        log.warning("TensorFlow started before %s was read; its thread pools keep their size", CPUS_VARIABLE)


def sweep_exists(store: RunStore, name: str) -> bool:
    """Is the sweep still in the store? A worker on another machine may outlive it (deleted meanwhile)."""
    return name in store.sweep_names()


def run_worker(store: RunStore, name: str, watch: Watch | None = None, data: SweepData | None = None) -> int:
    """Work on the sweep until nothing is left (or Stop); returns the number of trials this worker ran.

    `data`: the sweep's loaded and split dataset, when the caller already has it.
    """
    watch = watch or Watch()
    spec = store.spec(name)
    if remaining_trials(store.trials(name), spec) == 0:
        return 0
    use_task_cpus()
    ran = 0

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1
        watch.trial_done()
        if spec.ensemble:
            store.drop_fold_models(name, keep={t.number for t in ensemble_candidates(store, name)})
        if remaining_trials(store.trials(name), spec) == 0:
            study.stop()

    try:
        data = data or SweepData.of_sweep(store, name, say=watch.say)
        study = store.study(name, sampler=make_sampler(spec), pruner=make_pruner(spec))
        study.optimize(Objective(store, name, data, watch), callbacks=[after_trial], catch=())
    except StopRequested as stop:
        watch.say(str(stop))
    except Exception as error:          # fatal for the sweep: say so in the store, where every watcher looks
        if not sweep_exists(store, name):
            gone = f"sweep {name!r} was deleted while this worker ran it; the worker stops"
            raise StoreError(gone) from None
        reason = fatal_reason(error)
        if reason is None:
            raise
        store.set_failed(name, reason)
        watch.say(f"sweep {name!r} failed: {reason}")
    return ran
