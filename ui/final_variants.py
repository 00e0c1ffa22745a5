"""The final model's variants (single refit, fold ensemble, + flip TTA) side by side on the test split,
and the choice of the one Predict and export use. Nothing drawn for a final model without variants."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.runs.records import FinalModel
from ui import state
from ui.widgets import table


def variants_table(final: FinalModel) -> pd.DataFrame:
    """One row per variant: test accuracy and macro F1, and which one is chosen."""
    return pd.DataFrame([{"variant": v.label, "test accuracy": round(v.test_accuracy, 4),
                          "macro F1": round(final.choose(v.name).evaluation("test").report().at["macro avg", "f1"], 4),
                          "chosen": "✓" if v.name == final.chosen else ""} for v in final.variants])


def final_variants(final: FinalModel | None, sweep: str) -> None:
    """The variants' table and a radio choosing one (the single refit until the user picks another)."""
    if final is None or not final.variants:
        return
    st.markdown("**Final model variants** (test split)")
    table(variants_table(final), f"{sweep} final variants")
    names = [v.name for v in final.variants]
    labels = {v.name: v.label for v in final.variants}
    picked = st.radio("Model that Predict and export use", names, index=names.index(final.chosen),
                      format_func=labels.get, horizontal=True, key=f"final-variant-{sweep}",
                      help="chosen by you: the test split reports, it does not pick (that would flatter "
                           "the figure). The single refit is the default.")
    if picked != final.chosen and state.store_action(lambda: state.store().choose_final_variant(sweep, picked)):
        st.rerun()
