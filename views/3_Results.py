"""Results: compare the trials of one or more sweeps, then look closely at one trial and the refit model."""
from __future__ import annotations

import streamlit as st

from core.results import charts
from core.results.chart_style import label
from core.results.tables import compared_params, fold_table, trial_label, trials_table
from ui import state
from ui.cleaning import before_after, suspect_count
from ui.comparison import backbone_section, importance_section
from ui.confusion_cells import validation_confusion
from ui.evaluation import evaluation_views
from ui.exports import export_panel
from ui.final_variants import final_variants
from ui.summary_band import DETAIL_TAB, summary_band
from ui.widgets import chart, plain, table

st.title("Results")
names = state.sweep_names()
if not names:
    st.info("No sweeps yet: launch one on the Sweep page.")
    st.page_link("views/2_Sweep.py", label="Go to Sweep", icon=":material/tune:")
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
params = compared_params(trials)
for name in chosen:
    if final := state.final(name):
        summary_band(final, name)


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
    else:
        st.caption(f"No 3-D error surface: it needs two parameters that took more than one value, and these "
                   f"trials vary only {plain(label(params[0]))}.")
    chart(charts.parallel_coordinates(trials, params), "parallel coordinates")
    importance_section(trials)
    param = st.selectbox("Error against one parameter", params)
    chart(charts.error_vs_param(trials, param), f"error by {param}")


def trial_detail() -> None:
    sweep = st.selectbox("Sweep", chosen, key="detail-sweep") if len(chosen) > 1 else chosen[0]
    final = state.final(sweep)
    final_trial = final.trial if final else None
    numbers = trials[trials["sweep"] == sweep].sort_values("value", na_position="last")["number"].tolist()
    default = numbers.index(final_trial) if final_trial in numbers else 0
    number = st.selectbox("Trial", numbers, index=default,
                          format_func=lambda n: trial_label(trials, sweep, n, final_trial))
    result = state.trial(sweep, int(number)).result
    if result is None or not result.folds:
        st.info("This trial has no results (it is waiting, running, pruned or failed).")
    else:
        curves = result.curves()
        if all(curves.values()):
            left, right = st.columns(2)
            with left:
                chart(charts.learning_curves(curves, metric="loss"), f"trial {number} loss")
            with right:
                chart(charts.learning_curves(curves, metric="accuracy"), f"trial {number} accuracy")
        else:
            st.caption("This trial has no learning curves: it trained no network (scikit-learn on the "
                       "backbone's features), so it has folds but no epochs.")
        table(fold_table(result), f"trial {number} folds")
        suspect_count(sweep, int(number))
        validation_confusion(result, state.store().oof(sweep, int(number)), f"{sweep}-{number}",
                             final.model_path if final else None)
    st.subheader("Final model")
    if not final:
        st.info("No final model yet: it is refit from the best trial when the sweep finishes.")
    elif final.trial != number:
        st.caption(f"The final model was made from trial {final.trial}: choose it to see its test results.")
    else:
        st.caption(f"{final.describe().capitalize()}; `{final.model_path}`")
        final_variants(final, sweep)
        evaluation_views(final, sweep)
        export_panel(final, sweep)


overview, comparison, detail = st.tabs(["Trials", "Compare", DETAIL_TAB], key="results_tab", bind="query-params")
with overview:
    chart(charts.trial_progress(trials), "trials")
    table(trials_table(trials), "trials")
with comparison:
    compare()
    backbone_section(chosen)
    before_after(chosen)
with detail:
    trial_detail()
