"""The live view of one sweep: progress, counts, best so far, per-epoch curves of running trials,
Stop / Resume. It polls the store (the one source of truth), so any session, after any reload or
server restart, sees the same sweep; a poll costs two queries (`lifecycle.view`)."""
from __future__ import annotations

import streamlit as st

from core.results import charts
from core.runs.records import SweepStatus, TrialState, trials_frame
from core.search import lifecycle
from core.search.lifecycle import SweepView
from core.spec.sweep import SweepSpec
from ui import state
from ui.widgets import chart, plain

POLL_S = 2.0


def _controls(view: SweepView) -> None:
    store, name, sweep = state.store(), view.sweep.name, view.sweep
    stop_col, resume_col, yaml_col, _ = st.columns([1, 1, 1, 3])
    if stop_col.button("Stop", icon=":material/stop:",
                       disabled=sweep.status != SweepStatus.RUNNING or sweep.stop_requested,
                       help="workers stop after their current epoch; the trial is queued again for Resume"):
        lifecycle.stop(store, name)
        st.toast(f"Stop requested for {name}")
    if resume_col.button("Resume", icon=":material/play_arrow:", disabled=view.driven or sweep.status == SweepStatus.DONE,
                         help="start the sweep's driver again: it runs what is left, then refits the best"):
        lifecycle.resume(store, name)
        st.rerun()
    yaml_col.download_button("Spec (YAML)", SweepSpec.from_dict(sweep.spec).to_yaml(), file_name=f"{name}.yaml",
                             mime="application/x-yaml", icon=":material/download:",
                             help=f"re-run it from the command line: python -m core sweep {name}.yaml")


def _live_curves(view: SweepView) -> None:
    for trial in view.trials:
        if trial.state != TrialState.RUNNING:
            continue
        live = trial.live
        if live is None or not live.curves:
            st.caption(f"Trial {trial.number}: preparing data and features…")
            continue
        st.markdown(f"**Trial {trial.number}** · fold {live.fold + 1}, epoch {live.epoch + 1}")
        left, right = st.columns(2)
        with left:
            chart(charts.learning_curves(live.curves, metric="loss"), f"trial {trial.number} loss")
        with right:
            chart(charts.learning_curves(live.curves, metric="accuracy"), f"trial {trial.number} accuracy")


def sweep_panel(name: str) -> None:
    """Poll while the sweep runs; when its status changes, rerun the page so polling stops or starts."""
    started_as = state.store().status(name)

    @st.fragment(run_every=POLL_S if started_as == SweepStatus.RUNNING else None)
    def panel() -> None:
        view = lifecycle.view(state.store(), name)
        sweep, counts = view.sweep, view.counts
        if sweep.status != started_as:
            st.rerun()
        st.progress(min(counts.done / max(view.planned, 1), 1.0),
                    text=f"**{name}** · {sweep.status.value} · {counts.done} of {view.planned} trials")
        if view.needs_resume:
            st.warning("No process is driving this sweep (the server restarted or it crashed): press Resume.")
        if sweep.stop_requested and sweep.status == SweepStatus.RUNNING:
            st.info("Stop requested: workers stop after their current epoch.")
        cols = st.columns(5)
        cols[0].metric("Done", counts.done)
        cols[1].metric("Running", counts.running)
        cols[2].metric("Waiting", counts.waiting)
        cols[3].metric("Failed", counts.failed)
        scored = [t.value for t in view.trials if t.state == TrialState.COMPLETE and t.value is not None]
        cols[4].metric("Best error", f"{min(scored):.4f}" if scored else "–")
        _controls(view)
        final = sweep.final
        if final:
            st.success(f"Best trial {final.trial} refit: test accuracy {final.test_accuracy:.1%} "
                       f"(CV error {final.cv_error:.4f}).")
            st.page_link("pages/3_Results.py", label="See the results", icon=":material/monitoring:",
                         query_params={"sweep": name})
        _live_curves(view)
        chart(charts.trial_progress(trials_frame(view.trials)), f"{name} progress")
        for trial in view.trials:
            if trial.state == TrialState.FAIL:
                st.error(f"Trial {trial.number} failed: {plain(trial.error) or 'see the driver log'}")

    panel()
