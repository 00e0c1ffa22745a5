"""Sweep: define a sweep from the spec's own schema, launch it in a worker process, watch it live.

The sweep being watched lives in the URL (?sweep=NAME): a reload, another tab or a colleague's
browser reattaches to it.
"""
from __future__ import annotations

import streamlit as st

from core.search import lifecycle
from core.search.placement import Executor
from core.search.sweep_plan import SweepPlan
from core.spec.sweep import SweepSpec
from ui import auth, state
from ui.augment_preview import augmentation_preview
from ui.budget_plan import budgeted
from ui.cache_panel import cache_panel
from ui.spec_form import executor_choice, sweep_form
from ui.sweep_live import sweep_panel
from ui.widgets import plain

st.title("Sweep")
store = state.store()


def launch(spec: SweepSpec, executor: Executor) -> None:
    """Record the sweep in the store, start its driver outside this script, and attach to it."""
    if state.store_action(lambda: lifecycle.start(store, spec, state.settings(), executor, user=auth.user())):
        st.query_params["sweep"] = spec.name
        st.rerun()


def attach_picker() -> str | None:
    names = state.sweep_names()
    current = st.query_params.get("sweep")
    if current and current not in names:
        st.warning(f"No sweep named '{plain(current)}' can be shown; pick one below or define a new one.")
        current = None
    if not names:
        return None
    choice = st.selectbox("Watch a sweep", names, index=names.index(current) if current else len(names) - 1,
                          help="every sweep in the shared store, whoever launched it")
    st.query_params["sweep"] = choice
    return choice


watched = attach_picker()
if watched:
    sweep_panel(watched)
cache_panel(state.trials([watched]) if watched else None)

with st.expander("New sweep", expanded=not watched, icon=":material/add:"):
    spec, problem = sweep_form()
    launched = None
    if problem:
        st.error(f"{plain(problem)}\n\nCorrect this field to launch.")
    else:
        launched = budgeted(spec)
    if launched is not None:
        st.info(f"This sweep trains {plain(SweepPlan.of(launched).describe())}.", icon=":material/calculate:")
    executor = executor_choice()
    left, right = st.columns([1, 4])
    if left.button("Launch", type="primary", disabled=launched is None, icon=":material/rocket_launch:"):
        launch(launched, executor)
    if launched is not None:
        right.download_button("Spec (YAML)", launched.to_yaml(), file_name=f"{launched.name}.yaml",
                              mime="application/x-yaml", icon=":material/download:", key="form-yaml")
augmentation_preview(launched or spec)         # the planned spec once planned (its image size)
