"""The Sweep page's live panel and a sweep's time budget (issue 20): the plan it was launched with, the time left
in the budget while it runs, and where the budget cut it short."""
from __future__ import annotations

import time
from pathlib import Path

from apptest import optuna_choice
from streamlit.testing.v1 import AppTest

from core.runs.records import BudgetClock, FoldResult, SweepStatus, TrialResult
from core.runs.store import RunStore
from core.spec.sweep import SweepSpec

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PLAN = "about 12 min of 15 min: efficientnet_lite0 at 224 px, head 2 epochs then the top 40 layers 8 more"


def test_the_live_panel_says_the_plan_the_budget_left_and_where_it_cut_the_sweep(data_root: Path) -> None:
    store = RunStore()
    store.create_sweep(SweepSpec.from_dict({"name": "budgeted", "data": {"dataset": str(data_root / "colours")},
                                            "search": {"space": {"batch_size": [8, 16]}, "time_limit_s": 900,
                                                       "plan": PLAN, "plan_s": 720}}))
    study = store.study("budgeted")
    trial = study.ask({"batch_size": optuna_choice([8, 16])})
    fold = FoldResult(fold=0, val_error=0.2, best_epoch=2, curves={}, summary={})
    store.set_result(trial, TrialResult(folds=[fold], cache="hit", cut="", duration_s=500.0,
                                        stopped_early="budget reached: fold 1 stage 2 after 3 of 8 epochs"))
    study.tell(trial, 0.2)
    store.set_clock("budgeted", BudgetClock(time.time() - 600, note="budget reached after 1 of 2 trials"))
    store.set_status("budgeted", SweepStatus.RUNNING)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = "budgeted"
    at.run()
    at.switch_page("views/2_Sweep.py").run()
    assert not at.exception, at.exception
    captions = [c.value.replace("\\", "") for c in at.caption]     # as shown: plain text, escaped
    assert any("Time budget 15 min" in c and "about 12 min of 15 min" in c for c in captions), captions
    said = [i.value.replace("\\", "") for i in at.info]
    assert any("Budget reached after 1 of 2 trials; trial 0: budget reached: fold 1 stage 2 after 3 of 8 epochs"
               in i for i in said), said
    progress = " ".join(p.value["text"] if isinstance(p.value, dict) else str(p.proto.text) for p in
                        at.get("progress"))
    assert "budget: 5 min left" in progress, progress
