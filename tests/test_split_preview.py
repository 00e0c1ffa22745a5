"""The Dataset page's split preview: its greyed train / test count fields show the counts its chart and table
show, on first sight and after another dataset is chosen (issue 23, item 5: they kept stale numbers)."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import no_errors, page
from conftest import app_data_root, write_class_folders
from streamlit.testing.v1 import AppTest


def shown_counts(at: AppTest) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the count fields' values, the split table's column sums)."""
    fields = (at.number_input(key="preview.train_count"), at.number_input(key="preview.test_count"))
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["train", "test"])
    return (fields[0].value, fields[1].value), (int(table["train"].sum()), int(table["test"].sum()))


def test_the_count_fields_equal_the_chart_after_a_dataset_change(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = app_data_root(tmp_path, monkeypatch, per_class=12)
    other = write_class_folders(root / "more", per_class=20)
    at = page()
    no_errors(at)
    assert at.number_input(key="preview.train_count").disabled
    fields, chart = shown_counts(at)
    assert fields == chart and sum(chart) == 36
    at.sidebar.selectbox(key="dataset_choice").set_value(str(other)).run()
    no_errors(at)
    fields, chart = shown_counts(at)
    assert fields == chart and sum(chart) == 60
    at.number_input(key="preview.test_fraction").set_value(0.3).run()
    fields, chart = shown_counts(at)
    assert fields == chart and chart[1] == 18

    at.selectbox(key="preview.split").set_value("ordered").run()      # starts at 2/3 of the dataset shown
    no_errors(at)
    assert shown_counts(at) == ((40, 20), (40, 20))
    at.number_input(key="preview.train_count").set_value(30)
    at.number_input(key="preview.test_count").set_value(6).run()
    assert shown_counts(at) == ((30, 6), (30, 6))
    at.sidebar.selectbox(key="dataset_choice").set_value(str(root / "colours")).run()
    no_errors(at)
    assert shown_counts(at) == ((24, 12), (24, 12))
