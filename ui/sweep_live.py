"""The live view of one sweep: progress, counts, best so far, per-epoch curves of running trials,
Stop / Resume. It polls the store (the one source of truth), so any session, after any reload or
server restart, sees the same sweep."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.results import charts
from core.runs.store import RunStore
from ui import state
from ui.widgets import chart

POLL_S = 2.0
FINISHED = ("COMPLETE", "PRUNED")


def _counts(trials: pd.DataFrame) -> dict[str, int]:
    states = trials["state"].value_counts()
    return {s: int(states.get(s, 0)) for s in ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")}


def _controls(store: RunStore, name: str, status: str, alive: bool) -> None:
    from core.search.executors import launch_detached
    stop_col, resume_col, yaml_col, _ = st.columns([1, 1, 1, 3])
    if stop_col.button("Stop", icon=":material/stop:", disabled=status != "running" or store.stop_requested(name),
                       help="workers stop after their current epoch; the trial is queued again for Resume"):
        store.request_stop(name)
        st.toast(f"Stop requested for {name}")
    if resume_col.button("Resume", icon=":material/play_arrow:", disabled=alive or status == "done",
                         help="start the sweep's driver again: it runs what is left, then refits the best"):
        store.request_stop(name, False)
        launch_detached(store, name)
        st.rerun()
    yaml_col.download_button("Spec (YAML)", store.spec(name).to_yaml(), file_name=f"{name}.yaml",
                             mime="application/x-yaml", icon=":material/download:",
                             help=f"re-run it from the command line: python -m core sweep {name}.yaml")


def _live_curves(store: RunStore, name: str, trials: pd.DataFrame) -> None:
    for number in trials.loc[trials["state"] == "RUNNING", "number"]:
        live = store.trial_record(name, int(number)).get("live")
        if not live or not live.get("curves"):
            st.caption(f"Trial {number}: preparing data and features…")
            continue
        st.markdown(f"**Trial {number}** · fold {live['fold'] + 1}, epoch {live['epoch'] + 1}")
        left, right = st.columns(2)
        with left:
            chart(charts.learning_curves(live["curves"], metric="loss"), f"trial {number} loss")
        with right:
            chart(charts.learning_curves(live["curves"], metric="accuracy"), f"trial {number} accuracy")


def sweep_panel(name: str) -> None:
    """Poll while the sweep runs; when its status changes, rerun the page so polling stops or starts."""
    from core.search.executors import driver_alive
    store = state.store()
    started_as = store.status(name)

    @st.fragment(run_every=POLL_S if started_as == "running" else None)
    def panel() -> None:
        status = store.status(name)
        if status != started_as:
            st.rerun()
        alive = driver_alive(store, name)
        trials = store.trials_frame(name)
        if trials.empty:
            trials = pd.DataFrame(columns=["number", "state", "value", "value_std", "error"])
        planned = store.spec(name).grid_size()
        counts = _counts(trials)
        done = counts["COMPLETE"] + counts["PRUNED"]
        st.progress(min(done / max(planned, 1), 1.0), text=f"**{name}** · {status} · {done} of {planned} trials")
        if status == "running" and not alive:
            st.warning("No process is driving this sweep (the server restarted or it crashed): press Resume.")
        if store.stop_requested(name) and status == "running":
            st.info("Stop requested: workers stop after their current epoch.")
        cols = st.columns(5)
        cols[0].metric("Done", done)
        cols[1].metric("Running", counts["RUNNING"])
        cols[2].metric("Waiting", counts["WAITING"])
        cols[3].metric("Failed", counts["FAIL"])
        scored = trials["value"].dropna()
        cols[4].metric("Best error", f"{scored.min():.4f}" if len(scored) else "–")
        _controls(store, name, status, alive)
        final = store.final(name)
        if final:
            st.success(f"Best trial {final['trial']} refit: test accuracy {final['test_accuracy']:.1%} "
                       f"(CV error {final['cv_error']:.4f}).")
            st.page_link("pages/3_Results.py", label="See the results", icon=":material/monitoring:",
                         query_params={"sweep": name})
        _live_curves(store, name, trials)
        chart(charts.trial_progress(trials), f"{name} progress")
        for _, row in trials[trials["state"] == "FAIL"].iterrows():
            st.error(f"Trial {row['number']} failed: {row.get('error') or 'see the driver log'}")

    panel()
