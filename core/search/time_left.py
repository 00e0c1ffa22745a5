"""How long a running trial and the whole sweep still need, from what has run so far, and what is left of the
sweep's time budget (`core.search.deadline` enforces it; the sweep's estimate never exceeds it).

A trial's estimate comes from its own epochs (seconds per epoch times the epochs left in its
folds); a long step before its first epoch (the backbone pass) from that step's rate. The sweep's
comes from finished trials' durations, leaving out the trials that paid the one-off backbone
pass (cache "miss") when others did not, times what remains of the grid or budget, shared by the
trials running side by side. Early stopping only makes trials shorter: the estimates are upper
bounds that tighten as trials finish.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.runs.records import LiveProgress, StepProgress, SweepRecord, TrialRecord, TrialState
from core.spec.sweep import SweepSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def step_seconds_left(step: StepProgress) -> float | None:
    return (step.total - step.done) / step.rate if step.rate > 0 else None


def trial_seconds_left(live: LiveProgress | None) -> float | None:
    """Seconds until this trial's last epoch ends; None until two epochs have told its pace."""
    if live is None or live.folds <= 0 or live.epochs <= 0 or live.epochs_done < 2:
        return None
    per_epoch = (live.last_epoch_at - live.first_epoch_at) / (live.epochs_done - 1)
    return per_epoch * max(live.folds * live.epochs - live.epochs_done, 0)


def trial_cost(trials: list[TrialRecord]) -> float | None:
    """Typical seconds of one trial: the median of finished trials, without the backbone pass when
    some trials ran without it."""
    finished = [t for t in trials if t.state in FINISHED and t.duration_s]
    warm = [t for t in finished if t.result is None or t.result.cache != "miss"]
    durations = [t.duration_s for t in (warm or finished)]
    return statistics.median(durations) if durations else None


@dataclass(frozen=True)
class TimeLeft:
    """Seconds left: per running trial (None: not known yet), for the whole sweep and in its time budget (None:
    no time limit)."""

    trials: dict[int, float | None]
    sweep: float | None
    budget: float | None = None


def budget_left(sweep: SweepRecord, spec: SweepSpec, now: float | None = None) -> float | None:
    """Seconds left in the sweep's time budget (`search.time_limit_s`, counted on its clock); None without a
    limit or before its driver started the clock."""
    if not spec.search.time_limit_s or sweep.clock is None:
        return None
    return sweep.clock.origin + spec.search.time_limit_s - (time.time() if now is None else now)


def budget_note(sweep: SweepRecord, trials: list[TrialRecord]) -> str:
    """Where the time budget cut the sweep short ("" where it did not): the sweep's note (`BudgetClock`), then
    each trial's ("trial 0: budget reached: fold 1 stage 2 after 3 of 8 epochs"). What the pages and the CLI say."""
    said = [sweep.clock.note] if sweep.clock is not None and sweep.clock.note else []
    said += [f"trial {t.number}: {t.result.stopped_early}" for t in trials
             if t.result is not None and t.result.stopped_early]
    return "; ".join(said)


def time_left(trials: list[TrialRecord], remaining: int, now: float | None = None,
              budget: float | None = None) -> TimeLeft:
    """`remaining`: trials not started yet (`oracle.remaining_trials`); `budget`: seconds left in the sweep's
    time budget (`budget_left`), which caps the sweep's estimate and stands in for it until it is known."""
    now = time.time() if now is None else now
    budget = None if budget is None else max(budget, 0.0)
    estimate = _sweep_estimate(trials, remaining, now)
    sweep = estimate.sweep if budget is None or estimate.sweep is None else min(estimate.sweep, budget)
    per_trial = {n: v if budget is None or v is None else min(v, budget) for n, v in estimate.trials.items()}
    return TimeLeft(per_trial, budget if sweep is None else sweep, budget)


def _sweep_estimate(trials: list[TrialRecord], remaining: int, now: float) -> TimeLeft:
    cost = trial_cost(trials)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    per_trial: dict[int, float | None] = {}
    for t in running:
        left = trial_seconds_left(t.live)
        if left is None and cost is not None and t.started is not None:
            left = max(cost - (now - t.started), 0.0)
        per_trial[t.number] = left
    if (cost is None and remaining) or any(v is None for v in per_trial.values()):
        return TimeLeft(per_trial, None)
    side_by_side = max(len(running), 1)
    queued = remaining * (cost or 0.0)
    return TimeLeft(per_trial, (sum(per_trial.values()) + queued) / side_by_side)


def sweep_seconds(sweep: SweepRecord, trials: list[TrialRecord]) -> float | None:
    """A finished sweep's wall time: from its first trial's start to its final model."""
    starts = [t.started for t in trials if t.started is not None]
    if sweep.final is None or not starts:
        return None
    from datetime import datetime
    return datetime.fromisoformat(sweep.final.created).timestamp() - min(starts)


def describe_seconds(seconds: float | None) -> str:
    """"about 3 min", "1 h 05 min", "–" when not known."""
    if seconds is None:
        return "–"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def describe_time_left(left: TimeLeft) -> str:
    """One line for a terminal: "trial 3: 2 min left · sweep: about 14 min left · budget: 20 min left"."""
    parts = [f"trial {n}: {describe_seconds(s)} left" for n, s in sorted(left.trials.items()) if s is not None]
    if left.sweep is not None:
        parts.append(f"sweep: about {describe_seconds(left.sweep)} left")
    if left.budget is not None:
        parts.append(f"budget: {describe_seconds(left.budget)} left")
    return " · ".join(parts)


class Countdown:
    """The sweep's time-left line for a watcher, read from the store at most every `every_s`
    seconds (the CLI calls it on every epoch and step update)."""

    def __init__(self, read: Callable[[], TimeLeft], every_s: float = 5.0):
        self.read, self.every_s = read, every_s
        self.line, self.read_at = "", -math.inf

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self.read_at >= self.every_s:
            self.line, self.read_at = describe_time_left(self.read()), now
        return self.line
