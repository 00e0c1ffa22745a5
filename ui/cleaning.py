"""The Results page's view of label cleaning: how many of a trial's training images look mislabelled,
and sweeps before and after cleaning side by side on their common test images."""
from __future__ import annotations

import streamlit as st

from core.quality.suspects import flagged_count
from core.results.tables import common_test_table
from ui import state
from ui.widgets import plain, table


@st.cache_data(show_spinner=False, max_entries=64)
def _flagged(url: str, sweep: str, number: int, version: tuple) -> tuple[int, int] | None:
    oof = state.store().oof(sweep, number)
    return None if oof is None else (flagged_count(oof), len(oof.paths))


def suspect_count(sweep: str, number: int) -> None:
    rs = state.store()
    found = _flagged(rs.url, sweep, number, rs.version(sweep))
    if found is None:
        return
    flagged, total = found
    st.caption(f"cleanlab flags {flagged} of this trial's {total} training images as probably mislabelled "
               "(from its out-of-fold scores); review them on the Dataset page's Suspect labels tab.")


def before_after(chosen: list[str]) -> None:
    """Sweeps with a final model, compared on the test images they share (the last one's labels judge)."""
    finals = {name: test for name in chosen if (final := state.final(name)) and (test := final.evaluation("test"))}
    if len(finals) < 2:
        return
    st.subheader("Final models on their common test images")
    st.caption("A sweep run after cleaning keeps the test split of the one before (less its excluded "
               "images); the last sweep chosen gives the labels.")
    try:
        table(common_test_table(finals), "final models on common test images")
    except ValueError as error:
        st.info(plain(error))
