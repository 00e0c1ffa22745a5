"""The Dataset page's split preview: the data spec's split fields beside the chart and table of the split
they give (`core.data.findings.split_table`, the sweep's own split).

The train and test counts are the ordered split's inputs; greyed for the other splits, they show the counts
the chart shows, recomputed on every run, so they never keep another dataset's numbers (issue 23, item 5).
An ordered split starts at two thirds train, one third test of the dataset shown.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.data.datasets import Dataset
from core.data.findings import split_table
from core.data.scan import ScanReport
from core.results import charts
from core.spec.fields import fields_by_path
from ui.spec_form import field_widget
from ui.widgets import chart, table, user_error

KEY = "preview.{}"
ORDERED_FOR = "preview.ordered_for"       # the dataset whose ordered counts the fields hold


def _field(name: str, disabled: bool = False) -> Any:
    return field_widget(fields_by_path()[f"data.{name}"], key=KEY.format(name), disabled=disabled)


def _counts(dataset: Dataset, report: ScanReport, inputs: dict[str, Any]) -> pd.DataFrame | None:
    try:
        return split_table(dataset, report, **inputs)
    except ValueError as error:
        user_error(error, "Change the split settings.")
        return None


def _show_counts(train: int, test: int) -> None:
    """Put the counts in the count fields before they are drawn."""
    st.session_state[KEY.format("train_count")], st.session_state[KEY.format("test_count")] = train, test


def split_preview(dataset: Dataset, report: ScanReport) -> None:
    left, right = st.columns([1, 3])
    with left:
        method = _field("split")
        inputs: dict[str, Any] = {"method": method, "test_fraction": _field("test_fraction", method != "stratified"),
                                  "seed": _field("seed")}
    ordered = method == "ordered"
    with right:
        if ordered:
            if st.session_state.get(ORDERED_FOR) != str(dataset.root):
                st.session_state[ORDERED_FOR] = str(dataset.root)
                _show_counts(len(dataset) * 2 // 3, len(dataset) - len(dataset) * 2 // 3)
            with left:
                inputs |= {"train_count": _field("train_count"), "test_count": _field("test_count")}
            counts = _counts(dataset, report, inputs)
        else:
            st.session_state.pop(ORDERED_FOR, None)
            counts = _counts(dataset, report, inputs)
            if counts is not None:
                _show_counts(int(counts["train"].sum()), int(counts["test"].sum()))
            with left:
                _field("train_count", disabled=True)
                _field("test_count", disabled=True)
        if counts is not None:
            chart(charts.split_counts(counts), "split counts")
            table(counts, "split counts", index=True)
