"""A sweep's time budget as it runs (issue 20): `search.time_limit_s` seconds, counted from the sweep's start.

The clock lives in the store (`BudgetClock`), so every process of the sweep (the driver, its worker processes,
workers on other machines) reads the same one, and a resume counts what was spent before it: the driver, as it
starts again, moves the origin on by the pause (from the last activity its trials recorded until now).

Three rules spend it, each leaving the final model its reserve (`Budget.reserve_s`):

- no trial starts with less than half its estimate (the finished trials of its sort: `trial_cost`) left: one
  that gets more starts, and its stages end by the deadline, where refusing it would leave that time unused;
  the first refusal closes the budget (its note says after how many trials), and the driver starts no worker;
  the first trial always starts (without a completed trial there is no final model);
- a running trial trains to a `Deadline` (the budget's end less the reserve): each stage ends at an epoch
  boundary once its next epoch would overrun, every fold getting its share;
- the final model: a fold ensemble trains nothing; a refit trains to the budget's end, and is skipped when the
  fold ensemble is there to be the final model and the time is spent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from core.runs.records import BudgetClock, TrialRecord
from core.runs.store import RunStore
from core.search.oracle import TrialCounts
from core.search.time_left import FINISHED, trial_cost
from core.spec.sweep import SweepSpec, TrialParams
from core.training.stages import Deadline

FINAL_SHARE = 0.1            # of the budget, kept for the final model (its test passes, saves, a short refit)
FINAL_MIN_S = 5.0            # ... and at least this (building and saving a model), at most half the budget
START_SHARE = 0.5            # a trial starts when this share of its estimate is left (its stages end in time)


class OutOfTime(Exception):
    """The trial about to start would get too little of the time it needs in the sweep's time budget."""


@dataclass(frozen=True)
class Budget:
    """The sweep's time limit and the clock it counts on."""

    limit_s: float
    origin: float

    @property
    def end(self) -> float:
        return self.origin + self.limit_s

    @property
    def reserve_s(self) -> float:
        return min(max(FINAL_SHARE * self.limit_s, FINAL_MIN_S), self.limit_s / 2)

    def left(self) -> float:
        """Seconds left until the budget's end (negative once past it)."""
        return self.end - time.time()

    def for_trials(self) -> float:
        """Seconds left for trials: the time left less the final model's reserve."""
        return self.left() - self.reserve_s


def last_activity(trials: list[TrialRecord]) -> float | None:
    """When the sweep's trials last did something the store recorded: a trial's start, end or epoch."""
    times = [t.started + (t.duration_s or 0.0) for t in trials if t.started is not None]
    times += [t.live.last_epoch_at for t in trials if t.live is not None and t.live.last_epoch_at]
    return max(times, default=None)


def start_clock(store: RunStore, name: str) -> Budget | None:
    """The driver starting (or resuming) the sweep: its budget's clock starts now or, when it ran before, goes
    on from what was spent (up to its trials' last recorded activity); None without a time limit."""
    limit = store.spec(name).search.time_limit_s
    if not limit:
        return None
    now, clock = time.time(), store.sweep(name).clock
    if clock is None:
        clock = BudgetClock(origin=now)
    else:
        last = last_activity(store.trials(name))
        spent_s = max(last - clock.origin, 0.0) if last is not None else 0.0
        clock = BudgetClock(origin=now - spent_s, note=clock.note)
    store.set_clock(name, clock)
    return Budget(limit, clock.origin)


def sweep_budget(store: RunStore, name: str) -> Budget | None:
    """The sweep's budget as its processes share it (its clock started here when no driver started it: a worker
    run alone); None without a time limit."""
    limit = store.spec(name).search.time_limit_s
    if not limit:
        return None
    clock = store.sweep(name).clock
    return start_clock(store, name) if clock is None else Budget(limit, clock.origin)


def close(store: RunStore, name: str, note: str, after: bool = False) -> None:
    """The budget cut the sweep short: no more trials start; `note` says why. The first reason is kept, or with
    `after` (what the final model gave up) `note` follows it."""
    clock = store.sweep(name).clock or BudgetClock(origin=time.time())
    if not clock.note or after:
        store.set_clock(name, BudgetClock(clock.origin, "; ".join(filter(None, [clock.note, note]))))


def closed_note(trials: list[TrialRecord], spec: SweepSpec) -> str:
    """"budget reached after N of M trials"."""
    return f"budget reached after {TrialCounts.of(trials).done} of {spec.planned_trials()} trials"


def spent(store: RunStore, name: str) -> bool:
    """Whether the sweep's budget lets no further trial start (closing it when its time for trials is over):
    the driver asks before it starts workers."""
    budget = sweep_budget(store, name)
    return budget is not None and _spent(store, name, budget, store.trials(name))


def _spent(store: RunStore, name: str, budget: Budget, trials: list[TrialRecord]) -> bool:
    """`spent`, given the other `trials`: never before one has completed or while none runs."""
    counts = TrialCounts.of(trials)
    if not (counts.complete or counts.running):
        return False
    clock = store.sweep(name).clock
    if clock is not None and clock.note:
        return True
    if budget.for_trials() <= 0:
        close(store, name, closed_note(trials, store.spec(name)))
        return True
    return False


def estimate(spec: SweepSpec, trials: list[TrialRecord], params: TrialParams) -> float | None:
    """Seconds a trial with `params` should take: the typical finished trial of its sort (training a network or
    not); None before one has finished. Not scaled by the layers a trial trains: the first network trial's time
    holds the backbone pass that later ones read from the cache, and scaled by depth (80 / 27 layers) a 27-layer
    trial's 349 s, pass included, refused the 80-layer one as needing 1034 s."""
    alike = [t for t in trials
             if t.state in FINISHED and spec.trial_params(t.params).trains_network == params.trains_network]
    return trial_cost(alike)


def trial_deadline(store: RunStore, name: str, number: int, params: TrialParams, folds: int) -> Deadline | None:
    """The deadline trial `number`, about to start, trains to (None without a time limit); OutOfTime, after
    closing the budget, when the budget is spent or less than `START_SHARE` of the trial's estimate is left."""
    budget = sweep_budget(store, name)
    if budget is None:
        return None
    spec, others = store.spec(name), [t for t in store.trials(name) if t.number != number]
    left, cost = budget.for_trials(), estimate(spec, others, params)
    if _spent(store, name, budget, others) or (cost is not None and START_SHARE * cost > left):
        note = closed_note(others, spec)
        close(store, name, note)
        raise OutOfTime(f"{note}: the next trial needs about {cost or 0:.0f} s, {max(left, 0):.0f} s are left")
    return Deadline(budget.end - budget.reserve_s, folds)


def refit_deadline(store: RunStore, name: str) -> Deadline | None:
    """The deadline the final refit trains to: the budget's end (None without a time limit)."""
    budget = sweep_budget(store, name)
    return Deadline(budget.end, 1) if budget is not None else None


def refit_skipped(store: RunStore, name: str) -> bool:
    """With a fold ensemble to be the final model, whether the refit is left out: the budget's time is spent
    (noted on its clock)."""
    budget = sweep_budget(store, name)
    if budget is None or budget.left() > FINAL_MIN_S:
        return False
    close(store, name, "the refit skipped: no time left, the fold ensemble is the final model", after=True)
    return True


def refit_noted(store: RunStore, name: str, deadline: Deadline | None) -> None:
    """Where the budget cut the refit, on the budget's clock."""
    if deadline is not None and deadline.cuts:
        close(store, name, f"the refit stopped at the budget: {deadline.where()}", after=True)
