"""The live view of one sweep: progress, counts, best so far, per-epoch curves of running trials,
who launched or stopped it, why it failed, Stop / Resume / Delete. It polls the store (the one source
of truth), so any session, after any reload or server restart, sees the same sweep; a poll costs two
queries (`lifecycle.view`)."""
from __future__ import annotations

import streamlit as st

from core.results import charts
from core.runs.records import StepProgress, SweepRecord, SweepStatus, TrialRecord, TrialState
from core.runs.trials_table import trials_frame
from core.runs.store import StoreError
from core.search import lifecycle
from core.search.lifecycle import SweepView
from core.search.oracle import was_retried
from core.search.time_left import budget_note, describe_seconds, step_seconds_left
from core.spec.sweep import SweepSpec
from ui import auth, state
from ui.widgets import chart, plain

POLL_S = 2.0
CONFIRM_KEY = "sweep_live.confirm_delete"
REFUSED_KEY = "sweep_live.delete_refused"      # (sweep, its status then, why): shown across the polls


def _delete_refusal(sweep: SweepRecord) -> str:
    if sweep.launched_by:
        return f"only {plain(sweep.launched_by)}, who launched it, or an admin may delete it"
    return "only an admin may delete it (nobody is recorded as its launcher)"


def _delete_or_refuse(sweep: SweepRecord) -> None:
    """Delete the sweep; a refusal (it runs, here or in a worker elsewhere) is kept, so that it outlasts the
    next poll's redraw, until dismissed or the sweep's status changes."""
    try:
        lifecycle.delete(state.store(), sweep.name)
    except StoreError as refused:
        st.session_state[REFUSED_KEY] = (sweep.name, sweep.status.value, str(refused))
        raise


def _refusal(sweep: SweepRecord) -> None:
    """The kept refusal to delete this sweep, with a Dismiss button; forgotten once its status changes."""
    kept = st.session_state.get(REFUSED_KEY)
    if kept is None:
        return
    name, status, why = kept
    if (name, status) != (sweep.name, sweep.status.value):
        st.session_state.pop(REFUSED_KEY, None)
        return
    st.error(f"Not deleted: {plain(why)}", icon=":material/block:")
    st.button("Dismiss", key="sweep-delete-dismiss", on_click=st.session_state.pop, args=(REFUSED_KEY, None))


def _delete(sweep: SweepRecord) -> None:
    """A second click confirms; the policy (`ui.auth.may_delete`) says who may."""
    name, allowed = sweep.name, auth.may_delete(sweep, auth.user())
    if st.session_state.get(CONFIRM_KEY) != name:
        st.button("Delete", icon=":material/delete:", disabled=not allowed, key="sweep-delete",
                  on_click=st.session_state.__setitem__, args=(CONFIRM_KEY, name),
                  help="remove the sweep, its trials and its models" if allowed else _delete_refusal(sweep))
        _refusal(sweep)
        return
    st.warning(f"Delete **{plain(name)}**, its trials and its models? This cannot be undone.")
    yes, no = st.columns(2)
    no.button("Cancel", key="sweep-delete-cancel", on_click=st.session_state.pop, args=(CONFIRM_KEY, None))
    if yes.button("Delete for good", type="primary", icon=":material/delete_forever:",
                  key="sweep-delete-confirm"):
        st.session_state.pop(CONFIRM_KEY, None)
        if state.store_action(lambda: _delete_or_refuse(sweep)):
            st.query_params.pop("sweep", None)
            st.toast(f"Deleted {name}", icon=":material/delete:")
            st.rerun()


def _controls(view: SweepView) -> None:
    store, name, sweep = state.store(), view.sweep.name, view.sweep
    stop_col, resume_col, yaml_col, delete_col, _ = st.columns([1, 1, 1, 2, 1])
    if stop_col.button("Stop", icon=":material/stop:",
                       disabled=sweep.status != SweepStatus.RUNNING or sweep.stop_requested,
                       help="workers stop after their current epoch; the trial is queued again for Resume"):
        if state.store_action(lambda: lifecycle.stop(store, name, user=auth.user())):
            st.toast(f"Stop requested for {name}")
    if resume_col.button("Resume", icon=":material/play_arrow:", disabled=view.driven or sweep.status == SweepStatus.DONE,
                         help="start the sweep's driver again (after fixing what made it fail): "
                              "it runs what is left, then refits the best"):
        if state.store_action(lambda: lifecycle.resume(store, name, user=auth.user())):
            st.rerun()
    yaml_col.download_button("Spec (YAML)", SweepSpec.from_dict(sweep.spec).to_yaml(), file_name=f"{name}.yaml",
                             mime="application/x-yaml", icon=":material/download:",
                             help=f"re-run it from the command line: python -m core sweep {name}.yaml")
    with delete_col:
        _delete(sweep)


def _who(sweep: SweepRecord) -> str:
    """Who launched the sweep (last) and who asked it to stop, as far as the store knows."""
    said = [f"launched by {plain(sweep.launched_by)}"] if sweep.launched_by else []
    if sweep.stopped_by and (sweep.stop_requested or sweep.status == SweepStatus.STOPPED):
        said.append(f"stop asked by {plain(sweep.stopped_by)}")
    text = " · ".join(said)
    return text[:1].upper() + text[1:]


def _step_bar(step: StepProgress) -> None:
    """A long step (decoding, the backbone pass, the refit) as a bar with its rate and time left."""
    unit = "epochs" if "epochs" in step.label else "images"
    st.progress(min(step.done / max(step.total, 1), 1.0),
                text=f"{step.label}: {step.done:,} of {step.total:,} · {step.rate:,.1f} {unit}/s · "
                     f"{describe_seconds(step_seconds_left(step))} left")


def _running_trial(trial: TrialRecord, left: float | None) -> None:
    """Where a running trial is (its long step, or fold k of K, epoch e of E), its time left and curves."""
    live = trial.live
    if live is None:
        st.caption(f"Trial {trial.number}: starting…")
        return
    if live.step is not None:
        st.markdown(f"**Trial {trial.number}** · preparing data and features")
        _step_bar(live.step)
        return
    of_folds = f" of {live.folds}" if live.folds else ""
    of_epochs = f" of {live.epochs}" if live.epochs else ""
    st.markdown(f"**Trial {trial.number}** · fold {live.fold + 1}{of_folds}, epoch {live.epoch + 1}{of_epochs}"
                f" · about {describe_seconds(left)} left")
    if live.curves:
        left_col, right_col = st.columns(2)
        with left_col:
            chart(charts.learning_curves(live.curves, metric="loss"), f"trial {trial.number} loss")
        with right_col:
            chart(charts.learning_curves(live.curves, metric="accuracy"), f"trial {trial.number} accuracy")


def _timing(view: SweepView) -> str:
    """"about 12 min left" while it runs (and what is left of its time budget), "took 34 min" once done."""
    if view.sweep.status == SweepStatus.DONE:
        return f"took {describe_seconds(view.took_s)}" if view.took_s is not None else ""
    if view.sweep.status == SweepStatus.RUNNING:
        if view.sweep.step is not None:          # the trials are over: the step's own bar says what is left
            return view.sweep.step.label
        left = f"about {describe_seconds(view.left.sweep)} left" if view.left.sweep is not None \
            else "time left: known once a trial has finished"
        budget = view.left.budget
        return left + (f" · budget: {describe_seconds(budget)} left" if budget is not None else "")
    return ""


def _budget(view: SweepView, spec: SweepSpec) -> None:
    """The sweep's time budget: the plan it was launched with, and where the budget cut it short."""
    if not spec.search.time_limit_s:
        return
    plan = f": {plain(spec.search.plan)}" if spec.search.plan else ""
    st.caption(f"Time budget {describe_seconds(spec.search.time_limit_s)}{plan}")
    if said := budget_note(view.sweep, view.trials):
        st.info(plain(said[:1].upper() + said[1:]), icon=":material/timer:")


def sweep_panel(name: str) -> None:
    """Poll while the sweep runs; when its status changes, rerun the page so polling stops or starts."""
    started_as = state.store().status(name)

    @st.fragment(run_every=POLL_S if started_as == SweepStatus.RUNNING else None)
    def panel() -> None:
        view = lifecycle.view(state.store(), name)
        sweep, counts = view.sweep, view.counts
        if sweep.status != started_as:
            st.rerun()
        timing = _timing(view)
        st.progress(min(counts.done / max(view.planned, 1), 1.0),
                    text=f"**{plain(name)}** · {sweep.status.value} · {counts.done} of {view.planned} trials"
                         + (f" · {timing}" if timing else ""))
        if who := _who(sweep):
            st.caption(who)
        _budget(view, SweepSpec.from_dict(sweep.spec))
        if sweep.status == SweepStatus.FAILED:
            st.error(f"This sweep failed: {plain(sweep.failure) or 'see the driver log'}. "
                     "Fix the cause, then press Resume.", icon=":material/error:")
        if view.needs_resume and view.driver_error:       # it could not record why in the store: its log says
            st.error(f"The driver stopped: {plain(view.driver_error)}. Fix the cause, then press Resume.",
                     icon=":material/error:")
        elif view.needs_resume:
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
            st.success(f"Best trial {final.trial}, {final.label}: test accuracy {final.test_accuracy:.1%} "
                       f"(CV error {final.cv_error:.4f}).")
            st.page_link("views/3_Results.py", label="See the results", icon=":material/monitoring:",
                         query_params={"sweep": name})
        if sweep.step is not None:
            _step_bar(sweep.step)
        for trial in view.trials:
            if trial.state == TrialState.RUNNING:
                _running_trial(trial, view.left.trials.get(trial.number))
        chart(charts.trial_progress(trials_frame(view.trials)), f"{name} progress")
        for trial in view.trials:
            if trial.state == TrialState.FAIL and not was_retried(trial, view.trials):
                st.error(f"Trial {trial.number} failed: {plain(trial.error) or 'see the driver log'}")

    panel()
