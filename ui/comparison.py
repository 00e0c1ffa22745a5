"""The Results page's backbone comparison (when the chosen sweeps span two or more backbones) and
parameter importance, over the store's records; the figures come from `core.results`."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.results.comparison import backbone_comparison, comparison_chart, formatted
from core.results.importance import EVALUATORS, ImportanceUnavailable, importance_chart, param_importances
from core.runs.records import TrialRecord
from ui import state
from ui.widgets import chart, plain, table

COMPARISON_NOTE = (
    "Per backbone: its best trial's CV error and fold std, the std of CV error over its trials, test accuracy "
    "when the final model was refit from that trial (else -), the best trial's parameters (all, and those "
    "training updated), seconds per epoch over all its trials (backbone pass included), images/s of its "
    "backbone pass to the activation cache, and the worker's peak memory during a trial. "
    "- : not known (trials run before these were recorded, or every activation came from the cache).")


@st.cache_data(show_spinner=False, max_entries=32)
def _sweep(url: str, name: str, version: tuple) -> tuple[list[TrialRecord], str]:
    """A sweep's trial records and its own backbone, read again only when the sweep changed."""
    rs = state.store()
    return rs.trials(name), rs.spec(name).params.backbone


def backbone_section(names: list[str]) -> None:
    """Backbones side by side: a table and a chart, shown only when there are two or more."""
    rs = state.store()
    sweeps = {name: _sweep(rs.url, name, rs.version(name)) for name in names}
    frame = backbone_comparison([t for records, _ in sweeps.values() for t in records],
                                {name: backbone for name, (_, backbone) in sweeps.items()},
                                {name: state.final(name) for name in names})
    if len(frame) < 2:
        st.caption(f"No backbone comparison: the chosen sweeps use one backbone "
                   f"({plain(', '.join(frame['backbone']) or 'none with a finished trial yet')}); choose sweeps of "
                   "two or more backbones to see them side by side.")
        return
    st.subheader("Backbones side by side")
    by_backbone = formatted(frame).set_index("backbone").T          # a column per backbone: side by side
    table(by_backbone, "backbones", index=True, height="content")
    st.caption(COMPARISON_NOTE)
    chart(comparison_chart(frame), "backbones side by side")


def importance_section(trials: pd.DataFrame) -> None:
    """Optuna's parameter importance over the completed trials, or one line saying why there is none."""
    evaluator = st.selectbox("Parameter importance by", list(EVALUATORS), format_func=EVALUATORS.get,
                             help="Optuna's importance evaluators; fANOVA fits a random forest to the trials' "
                                  "errors and splits its variance among the parameters")
    try:
        importances = param_importances(trials, evaluator)
    except ImportanceUnavailable as reason:
        st.info(f"No parameter importance: {plain(reason)}.")
        return
    chart(importance_chart(importances, evaluator), "parameter importance")
