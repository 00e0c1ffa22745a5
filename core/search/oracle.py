"""The oracle: what to try next (sampler, pruner, suggested values) and how much is left to try.

It plans and counts; a trial's training is the training wing's job, its records the store's.
Counting lives here once: the worker, the driver, the lifecycle and the pages all ask it.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from core.runs.records import TrialRecord, TrialState
from core.spec.sweep import SweepSpec, TrialParams
from core.training.kinds import same_work


class ListedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, visiting the grid in the order its values are listed (every parameter's first
    value first) instead of a seeded shuffle: a budget plan lists its main configuration first so that it runs
    first, and a grid runs in the order its user wrote it. Concurrent workers past the grid's size still draw
    from the unvisited points at random, as Optuna does."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]]) -> None:
        super().__init__(search_space)
        # Optuna keeps its shuffled grid here (parameters sorted by name); tested on the pinned version.
        self._all_grids = list(itertools.product(*self._search_space.values()))


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """Grid, random or TPE. A grid with nothing swept is one trial: any sampler serves, none is asked."""
    seed = spec.data.seed
    if spec.search.method == "grid" and spec.search.space:
        return ListedGridSampler({name: dim.optuna_values for name, dim in spec.search.space.items()})
    if spec.search.method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.search.pruning:
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """One value per swept parameter, from its choice list or its range."""
    return {name: dim.suggest(trial, name) for name, dim in spec.search.space.items()}


@dataclass(frozen=True)
class TrialCounts:
    """How many trials of a sweep are in each state (surplus trials never counted, nor a failure
    whose retry holds its configuration: the retry's own state counts instead)."""

    complete: int = 0
    pruned: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0

    @classmethod
    def of(cls, trials: list[TrialRecord]) -> TrialCounts:
        count = {s: sum(t.state == s and not was_retried(t, trials) for t in trials) for s in TrialState}
        return cls(complete=count[TrialState.COMPLETE], pruned=count[TrialState.PRUNED],
                   running=count[TrialState.RUNNING], waiting=count[TrialState.WAITING],
                   failed=count[TrialState.FAIL])

    @property
    def done(self) -> int:
        return self.complete + self.pruned


def was_retried(trial: TrialRecord, trials: list[TrialRecord]) -> bool:
    """A failed trial that an interruption queued again: its retry, not it, holds its configuration."""
    return trial.state == TrialState.FAIL and any(
        t.retry_of == trial.number for t in trials if t is not trial)


def remaining_trials(trials: list[TrialRecord], spec: SweepSpec) -> int:
    """Trials nobody has started yet: planned minus finished or running (a retry queued for an
    interrupted trial is one of those not yet taken)."""
    taken = sum(t.state != TrialState.WAITING and not was_retried(t, trials) for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return max(spec.planned_trials() - taken, waiting)


def is_surplus(trials: list[TrialRecord], spec: SweepSpec, number: int) -> bool:
    """Do earlier trials already hold every planned configuration?

    Two workers can both see one trial left and both start one; the higher number yields (a grid
    would repeat a point). A retry of an interrupted trial is never surplus.
    """
    if any(t.number == number and t.retry_of is not None for t in trials):
        return False
    held = sum(not was_retried(t, trials) for t in trials if t.number < number)   # running, queued or final
    return held >= spec.planned_trials()


def repeated_work(trials: list[TrialRecord], spec: SweepSpec, params: TrialParams) -> int | None:
    """The number of a finished trial that already fitted what `params` would (`kinds.same_work`), if any."""
    return next((t.number for t in trials if t.state == TrialState.COMPLETE
                 and same_work(spec.trial_params(t.params), params)), None)
