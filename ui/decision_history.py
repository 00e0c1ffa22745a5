"""A dataset's label decisions where the Dataset page saves them (the suspect review, the near-duplicate
exclusions): the latest version in one line, the undo of the last save, and that version as CSV."""
from __future__ import annotations

import streamlit as st

from core.data.decisions import DecisionLog, DecisionsError, describe, to_csv
from ui import auth
from ui.widgets import plain, user_error


def decision_history(log: DecisionLog, key: str) -> None:
    """`key`: this place's prefix for its buttons (two places on one page each get their own)."""
    latest = log.latest()
    st.caption(plain(describe(latest)))
    undo, export = st.columns(2)
    if undo.button("Undo the last save", icon=":material/undo:", disabled=latest.parent is None,
                   key=f"{key}-undo"):
        try:
            log.undo(who=auth.user())
        except DecisionsError as error:
            user_error(error)
            return
        st.rerun()
    export.download_button("Decisions as CSV", data=to_csv(latest), mime="text/csv",
                           file_name=f"{log.root.name}-decisions.csv", icon=":material/download:", disabled=not latest.decisions,
                           key=f"{key}-csv")
