"""A sweep keeps and spends its time budget (issue 20): stages end at an epoch boundary by their fold's share of
the time, no trial starts with less than half its estimated time left, a resume counts what was spent, the live
time left is measured against the budget, and a sweep with a tiny budget ends inside it with a final model."""
from __future__ import annotations

import datetime as dt
import time

import keras
import numpy as np
import optuna
import pytest
from conftest import write_class_folders

from core.runs.records import BudgetClock
from core.runs.store import RunStore
from core.search import deadline as budget
from core.search.lifecycle import view
from core.search.time_left import time_left
from core.spec.sweep import SweepSpec, TrialParams
from core.training.stages import Deadline, Stage

KINDS = optuna.distributions.CategoricalDistribution(["network", "svm"])


class Ticks:
    """A clock that moves one second at every reading, and `jumps` further at some readings (by count)."""

    def __init__(self, jumps: dict[int, float] | None = None) -> None:
        self.now, self.readings, self.jumps = 0.0, 0, jumps or {}

    def __call__(self) -> float:
        self.readings += 1
        self.now += 1.0 + self.jumps.get(self.readings, 0.0)
        return self.now


def fitted_epochs(deadline: Deadline, fold: int, stage: Stage) -> int:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 2)), epochs=stage.last_epoch + 1, verbose=0,
                        initial_epoch=stage.first_epoch, callbacks=[deadline.callback(fold, stage)])
    return len(history.epoch)


def test_a_stage_ends_at_the_epoch_boundary_before_its_fold_share_runs_out():
    # 3 folds, read at t = 1 with 30 s to the deadline: fold 1's share ends at t = 11. An epoch reads the clock as
    # it begins and ends (1 s each): the 5th ends at t = 11, a 6th would end past it, so stage 2 stops there.
    deadline = Deadline(at=31.0, folds=3, clock=Ticks())
    stage = Stage(TrialParams(epochs=12), TrialParams(), first_epoch=2, number=2)
    assert fitted_epochs(deadline, 0, stage) == 5
    assert deadline.note() == "budget reached: fold 1 stage 2 after 5 of 12 epochs"
    assert fitted_epochs(Deadline(at=1e9, folds=3, clock=Ticks()), 0, stage) == 12      # time enough: all


def test_a_long_first_epoch_tracing_the_train_step_ends_a_stage_only_once_past_its_share():
    # fold 1's share ends at t = 11; the first epoch ends at t = 9 (6 s more: tracing), the 2nd at t = 11
    deadline = Deadline(at=31.0, folds=3, clock=Ticks(jumps={3: 6.0}))
    assert fitted_epochs(deadline, 0, Stage(TrialParams(epochs=12), TrialParams())) == 2


def test_every_fold_gets_a_share_of_the_time_left_and_at_least_one_epoch():
    clock = Ticks()
    deadline = Deadline(at=31.0, folds=3, clock=clock)
    assert deadline.fold_end(0) == 1.0 + 30.0 / 3            # read at t = 1: a third of the 30 s left
    clock.now = 40.0                                         # fold 2 starts after the deadline
    assert deadline.fold_end(1) == 41.0
    assert fitted_epochs(deadline, 1, Stage(TrialParams(epochs=8), TrialParams())) == 1
    assert deadline.note() == "budget reached: fold 2 after 1 of 8 epochs"


def budget_spec(name: str, limit_s: float) -> SweepSpec:
    return SweepSpec.from_dict({"name": name, "data": {"dataset": "unused"},
                                "search": {"space": {"kind": ["network", "svm"]}, "time_limit_s": limit_s}})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    folder = tmp_path_factory.mktemp("budget")
    return RunStore(f"sqlite:///{folder / 'runs.db'}", artifacts_dir=folder / "artifacts")


@pytest.fixture
def timed(store, request) -> str:
    """A sweep of its own in the module's store, 100 s of time limit (10 s kept for the final model)."""
    name = request.node.name[5:60]
    store.create_sweep(budget_spec(name, 0.0 if "without" in name else 100.0))
    return name


def add_trial(store: RunStore, name: str, kind: str, started: float, seconds: float) -> None:
    """A completed trial of `kind` that started at `started` and ran `seconds`."""
    start = dt.datetime.fromtimestamp(started)
    store.study(name).add_trial(optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=0.1, datetime_start=start,
        datetime_complete=start + dt.timedelta(seconds=seconds), params={"kind": kind},
        distributions={"kind": KINDS}, user_attrs={}, system_attrs={}, intermediate_values={}))


def test_a_resume_counts_the_time_spent_before_it_but_not_the_pause(store, timed):
    origin = time.time() - 1000                               # started 1000 s ago, stopped after 40 s of it
    store.set_clock(timed, BudgetClock(origin))
    add_trial(store, timed, "network", origin + 10, 30.0)
    resumed = budget.start_clock(store, timed)
    assert resumed.left() == pytest.approx(60.0, abs=1.0)
    assert store.sweep(timed).clock.origin == resumed.origin


def test_no_trial_starts_with_less_than_half_its_estimate_left_and_none_after_it(store, timed):
    store.set_clock(timed, BudgetClock(time.time() - 50))   # 50 s of 100 left, 10 kept: 40 s for trials
    add_trial(store, timed, "network", time.time() - 48, 70.0)      # a network trial takes 70 s: 35 s is half
    network, svm = TrialParams(kind="network"), TrialParams(kind="svm")
    assert budget.trial_deadline(store, timed, 99, network, folds=3) is not None    # starts; its stages end in time
    add_trial(store, timed, "network", time.time() - 48, 100.0)     # now 85 s typical: half is more than 40 s
    with pytest.raises(budget.OutOfTime, match="budget reached after 2 of 2 trials: the next trial needs about 85 s"):
        budget.trial_deadline(store, timed, 99, network, folds=3)
    assert store.sweep(timed).clock.note == "budget reached after 2 of 2 trials"
    with pytest.raises(budget.OutOfTime):                    # closed: not even a short one starts now
        budget.trial_deadline(store, timed, 99, svm, folds=3)
    assert budget.spent(store, timed)


def test_a_trial_that_fits_trains_to_the_budgets_end_less_the_final_models_reserve(store, timed):
    origin = time.time() - 50
    store.set_clock(timed, BudgetClock(origin))
    add_trial(store, timed, "network", time.time() - 48, 30.0)
    deadline = budget.trial_deadline(store, timed, 99, TrialParams(kind="network"), folds=3)
    assert deadline.at == pytest.approx(origin + 100 - 10, abs=0.01) and deadline.folds == 3
    assert not budget.spent(store, timed) and store.sweep(timed).clock.note == ""


def test_the_first_trial_starts_whatever_is_left_a_sweep_needs_one_for_its_final_model(store, timed):
    store.set_clock(timed, BudgetClock(time.time() - 500))  # far past its end
    assert not budget.spent(store, timed)
    assert budget.trial_deadline(store, timed, 0, TrialParams(), folds=3) is not None
    add_trial(store, timed, "network", time.time() - 400, 10.0)
    assert budget.spent(store, timed)
    assert store.sweep(timed).clock.note == "budget reached after 1 of 2 trials"


def test_a_sweep_without_a_time_limit_has_no_clock_and_no_deadline(store, timed):
    assert budget.start_clock(store, timed) is None and store.sweep(timed).clock is None
    assert budget.trial_deadline(store, timed, 0, TrialParams(), folds=3) is None
    assert not budget.spent(store, timed) and view(store, timed).left.budget is None


def test_the_time_left_is_measured_against_the_budget(store, timed):
    store.set_clock(timed, BudgetClock(time.time() - 70))
    left = view(store, timed).left
    assert left.budget == pytest.approx(30.0, abs=1.0)
    assert left.sweep == left.budget                          # no trial finished: the budget bounds it
    add_trial(store, timed, "network", time.time() - 60, 50.0)       # one done in 50 s, one queued: 50 s > 30 s
    assert view(store, timed).left.sweep == pytest.approx(30.0, abs=1.0)
    assert time_left([], 0, budget=-5.0).budget == 0.0


@pytest.mark.slow      # a real sweep on generated images: about 25 s on 2 busy cores
def test_a_sweep_with_a_tiny_budget_ends_inside_it_with_a_final_model(tmp_path):
    """Three trials of 400 epochs (minutes unbudgeted) in 20 s. Slack: 10 s, for what no budget cuts: a stage's
    first epoch (every fold, the refit), building and saving the final model beyond its reserve."""
    from core.search.executors import run_sweep
    limit, slack = 20.0, 10.0
    root = write_class_folders(tmp_path / "colours")
    spec = SweepSpec.from_dict({
        "name": "timed", "data": {"dataset": str(root), "test_fraction": 0.25},
        "params": {"weights": "none", "image_size": 32, "head": "dense_dropout", "dense_units": [16],
                   "epochs": 400, "early_stopping": 0},
        "search": {"space": {"learning_rate": [1e-3, 1e-2, 3e-2]}, "time_limit_s": limit}})
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(spec)
    started = time.time()
    final = run_sweep(store, "timed", say=lambda _: None)
    took = time.time() - started
    assert final is not None and store.final("timed") is not None
    assert took <= limit + slack, took
    trials = store.trials("timed")
    assert len(trials) < 3                                   # the budget let not every trial start
    assert store.sweep("timed").clock.note.startswith(f"budget reached after {len(trials)} of 3 trials")
    assert trials[0].result.stopped_early.startswith("budget reached: fold 1 after ")


def test_the_results_say_where_the_budget_cut_the_sweep(store, timed, capsys):
    from core.cli import main
    store.set_clock(timed, BudgetClock(time.time() - 500, note="budget reached after 1 of 2 trials"))
    assert main(["results", timed, "--storage", store.url]) == 0
    assert "time budget: budget reached after 1 of 2 trials" in capsys.readouterr().out
    assert main(["results", timed, "--storage", store.url, "--json"]) == 0
    assert '"budget_note": "budget reached after 1 of 2 trials"' in capsys.readouterr().out
