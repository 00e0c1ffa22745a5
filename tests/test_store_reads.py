"""What the pages' reads of the run store cost, counted in SQL statements (SQLAlchemy's cursor events): a
Results page run asks the store once per thing it shows (the trials table, the final model, one trial),
one query each when its cached copy is current; one trial is read without the others; the sweeps table and
the pages' list of sweeps cost the same whatever the number of sweeps.

Measured on the code before (issue 24): a rerun of the page's reads below made 33 statements (each
`version` read every trial and its attributes), after: 7 (4 list the sweeps, then one per version);
`trial` read every trial; `sweeps` cost 11 statements for one sweep and 25 for three, after: 5 for both;
the page's list of sweeps 6 and 10 (two reads per sweep), after: 4 for both."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution
from sqlalchemy import event

from core.runs.evaluation import Evaluation
from core.runs.records import FinalModel, FoldResult, TrialResult
from core.runs.store import RunStore
from core.spec.sweep import SweepSpec

RATES = [0.1, 0.01, 0.001, 0.0001]


def recorded(store: RunStore, name: str, trials: int, dataset: Path) -> None:
    """A sweep with `trials` complete trials (long curves: their results are artifacts) and a final model."""
    store.create_sweep(SweepSpec.from_dict({"name": name, "data": {"dataset": str(dataset)}, "folds": 2,
                                            "search": {"space": {"learning_rate": RATES}}}))
    study = store.study(name)
    scores = np.array([[.9, .1], [.2, .8], [.6, .4], [.3, .7]])
    evaluation = Evaluation(["a", "b"], np.array([0, 1, 0, 1]), scores)
    for i in range(trials):
        trial = study.ask({"learning_rate": CategoricalDistribution(RATES)})
        folds = [FoldResult(fold=k, val_error=0.1 * i, best_epoch=1, curves={"loss": [1.0, 0.5] * 100},
                            summary=evaluation.summary()) for k in range(2)]
        store.set_result(trial, TrialResult(folds=folds, cache="off", cut="", duration_s=1.0))
        study.tell(trial, 0.1 * i)
    store.set_final(name, FinalModel(trial=0, cv_error=0.0, params={}, epochs=1, model_path="m.keras",
                                     test=evaluation.to_json(), train=evaluation.to_json(), test_accuracy=1.0,
                                     created="now"))


@pytest.fixture(scope="module")
def statements(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunStore, list[str]]]:
    """The store the pages open (the environment's) holding sweep 'seen' of 3 trials, and the SQL statements
    run on it from then on."""
    folder = tmp_path_factory.mktemp("reads")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{folder / 'runs.db'}")
        from ui import state
        store = state.store()
        recorded(store, "seen", 3, folder)
        seen: list[str] = []

        def count(connection, cursor, statement, *args) -> None:
            seen.append(" ".join(statement.split()))
        event.listen(store.storage.engine, "before_cursor_execute", count)
        yield store, seen
        event.remove(store.storage.engine, "before_cursor_execute", count)


def test_a_results_page_rerun_costs_one_query_per_thing_it_shows(statements):
    from ui import state
    _, seen = statements

    def page() -> None:          # the Results page's reads: its sweeps, trials table, final model, one trial
        state.sweep_names()
        state.trials(["seen"])
        state.final("seen")
        state.trial("seen", 2)
    page()
    seen.clear()
    state.sweep_names()
    listing = len(seen)
    seen.clear()
    page()                            # a rerun (the caches hold the records): what every rerun costs
    assert len(seen) == listing + 3, seen
    assert not [s for s in seen if "trial_user_attributes" in s and "COUNT" not in s]   # no trial is read


def test_one_trial_is_read_without_the_others(statements):
    store, seen = statements
    seen.clear()
    record = store.trial("seen", 2)
    assert record.number == 2 and record.result is not None and record.value == pytest.approx(0.2)
    reads_of_trials = [s for s in seen if "FROM trials" in s]
    assert reads_of_trials and all("WHERE trials.trial_id = ?" in s or "trials.number = ?" in s
                                   for s in reads_of_trials), reads_of_trials
    with pytest.raises(Exception, match="has no trial 9"):
        store.trial("seen", 9)


def cost(seen: list[str], read) -> int:
    seen.clear()
    read()
    return len(seen)


def test_the_sweeps_table_and_list_cost_the_same_for_one_sweep_or_three(statements, tmp_path):
    from ui import state
    store, seen = statements
    one = cost(seen, store.sweeps), cost(seen, state.sweep_names)
    for name, trials in (("b", 2), ("c", 1)):
        recorded(store, name, trials, tmp_path)
    assert (cost(seen, store.sweeps), cost(seen, state.sweep_names)) == one
    assert state.sweep_names() == ["seen", "b", "c"]
    three = store.sweeps()
    assert list(three["sweep"]) == ["seen", "b", "c"] and list(three["complete"]) == [3, 2, 1]
    assert list(three["best_error"]) == pytest.approx([0.0] * 3) and list(three["planned"]) == [4] * 3
