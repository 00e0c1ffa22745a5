"""The band at the top of the Results page: the verdict first. Per sweep with a final model: which model
it is, its test accuracy with the image count and 95% interval beside the cross-validated estimate, and
links on to export and Predict."""
from __future__ import annotations

import streamlit as st

from core.runs.records import FinalModel
from ui.evaluation import final_headline
from ui.widgets import plain

RESULTS_PAGE, PREDICT_PAGE = "views/3_Results.py", "views/4_Predict.py"
DETAIL_TAB = "One trial"         # the Results tab holding the final model's evaluation and its export


def summary_band(final: FinalModel, name: str) -> None:
    """One bordered band for the final model of sweep `name`."""
    test = final.evaluation("test")
    with st.container(border=True):
        st.markdown(f"**{plain(name)}** · final model: {plain(final.describe())}")
        cols = st.columns(4)
        cols[0].metric("Test accuracy", f"{test.accuracy():.1%}" if test else f"{final.test_accuracy:.1%}",
                       help="the final model on the test images, which no trial and no refit saw")
        cols[1].metric("Cross-validated error", f"{final.cv_error:.3f}",
                       help=f"trial {final.trial}'s mean validation error over its folds: the sweep's estimate "
                            "before the test split")
        cols[2].metric("Variant", final.label, help="the form of the final model that Predict and export use")
        cols[3].metric("Test images", len(test.y_true) if test else "-")
        final_headline(final, name)
        links = st.columns(2)
        links[0].page_link(RESULTS_PAGE, label="Export it (One trial tab, at the bottom)", icon=":material/download:",
                           query_params={"sweep": name, "results_tab": DETAIL_TAB})
        links[1].page_link(PREDICT_PAGE, label="Classify new images with it", icon=":material/image_search:",
                           query_params={"sweep": name})
