"""Results: compare the trials of one or more sweeps, then look closely at one trial and the refit model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.results import charts
from ui import state
from ui.evaluation import evaluation_views
from ui.widgets import chart, table

st.title("Results")
store = state.store()
names = store.sweep_names()
if not names:
    st.info("No sweeps yet: launch one on the Sweep page.")
    st.page_link("pages/2_Sweep.py", label="Go to Sweep", icon=":material/tune:")
    st.stop()

wanted = st.query_params.get("sweep")
chosen = st.multiselect("Sweeps", names, default=[wanted if wanted in names else names[-1]],
                        help="trials of several sweeps are compared side by side")
if not chosen:
    st.stop()
trials = state.trials(chosen)
if trials.empty:
    st.info("These sweeps have no trials yet.")
    st.stop()
params = [p for p in charts.param_columns(trials) if p != "_" and trials[p].nunique(dropna=True) > 1]


def compare() -> None:
    if not params:
        st.info("Every trial has the same parameters: there is nothing to compare. Sweep a parameter to see its effect.")
        return
    if len(params) >= 2:
        a, b, c = st.columns(3)
        x = a.selectbox("x", params, index=0)
        y = b.selectbox("y", params, index=1)
        colour = c.selectbox("colour", [None, *params], format_func=lambda p: p or "(error)")
        chart(charts.error_surface_3d(trials, x, y, colour), "error surface")
    chart(charts.parallel_coordinates(trials, params), "parallel coordinates")
    param = st.selectbox("Error against one parameter", params)
    chart(charts.error_vs_param(trials, param), f"error by {param}")


def trial_detail() -> None:
    sweep = st.selectbox("Sweep", chosen, key="detail-sweep") if len(chosen) > 1 else chosen[0]
    final = state.final(sweep)
    rows = trials[trials["sweep"] == sweep].sort_values("value", na_position="last")
    numbers = rows["number"].tolist()
    default = numbers.index(final["trial"]) if final and final["trial"] in numbers else 0
    number = st.selectbox("Trial", numbers, index=default, format_func=lambda n: _trial_label(rows, n, final))
    folds = state.trial_record(sweep, int(number)).get("result", {}).get("folds", [])
    if not folds:
        st.info("This trial has no results (it is waiting, running, pruned or failed).")
    else:
        curves = {f"fold {f['fold'] + 1}": f["curves"] for f in folds}
        left, right = st.columns(2)
        with left:
            chart(charts.learning_curves(curves, metric="loss"), f"trial {number} loss")
        with right:
            chart(charts.learning_curves(curves, metric="accuracy"), f"trial {number} accuracy")
        summary = pd.DataFrame([{"fold": f["fold"] + 1, "validation error": f["val_error"],
                                 "best epoch": f["best_epoch"] + 1, "accuracy": f["summary"]["accuracy"]}
                                for f in folds])
        table(summary, f"trial {number} folds")
        confusion = np.sum([f["summary"]["confusion"] for f in folds], axis=0)
        chart(charts.confusion_matrix(confusion, folds[0]["summary"]["classes"],
                                      title="Validation confusion (all folds)"), f"trial {number} validation confusion")
    st.subheader("Final model")
    if not final:
        st.info("No final model yet: it is refit from the best trial when the sweep finishes.")
    elif final["trial"] != number:
        st.caption(f"The final model was refit from trial {final['trial']}: choose it to see its test results.")
    else:
        st.caption(f"Refit on the whole train part for {final['epochs']} epochs; `{final['model_path']}`")
        evaluation_views(final, sweep)


def _trial_label(rows: pd.DataFrame, number: int, final: dict | None) -> str:
    row = rows[rows["number"] == number].iloc[0]
    error = f"error {row['value']:.4f}" if pd.notna(row["value"]) else row["state"].lower()
    return f"trial {number} · {error}" + (" · final model" if final and final["trial"] == number else "")


overview, comparison, detail = st.tabs(["Trials", "Compare", "One trial"])
with overview:
    chart(charts.trial_progress(trials), "trials")
    table(trials, "trials")
with comparison:
    compare()
with detail:
    trial_detail()
