"""The Results page's summary band (AppTest): the verdict on top, before any tab, for a refit and for a
fold ensemble without one, and the train split named for what it holds."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import page
from conftest import app_data_root
from results_records import recorded_sweep
from streamlit.testing.v1 import AppTest


def split_options(at: AppTest) -> list[str]:
    split = next(s for s in at.get("button_group") if s.proto.label == "Split")
    return [option.content for option in split.proto.options]


def band(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric[:4]}


def test_the_band_states_the_final_model_its_test_accuracy_and_where_to_go_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = app_data_root(tmp_path, monkeypatch, per_class=10)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    recorded_sweep("refit", root / "colours")
    recorded_sweep("ensembled", root / "colours", refit=False)
    at = page()
    at.query_params["results_tab"] = "One trial"
    at.query_params["sweep"] = "refit"
    at.switch_page("views/3_Results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert band(at) == {"Test accuracy": "91.7%", "Cross-validated error": "0.111", "Variant": "single refit",
                        "Test images": "12"}
    assert "final model: refit on the whole train part for 3 epochs" in at.markdown[0].value
    assert "91.7% (95% interval 64.6-98.5%, 12 images)" in at.caption[0].value
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert any("Export" in label for label in links) and any("Classify" in label for label in links), links
    assert split_options(at) == ["test", "train (the refit's own fit)"]

    at.multiselect[0].set_value(["ensembled"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert band(at)["Variant"] == "fold ensemble"
    assert "own fold models, no refit" in at.markdown[0].value
    assert split_options(at) == ["test", "out-of-fold (train)"]


def test_charts_that_cannot_be_drawn_say_why_and_the_trials_table_speaks_human(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = app_data_root(tmp_path, monkeypatch, per_class=10)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    recorded_sweep("one-knob", root / "colours")
    at = page("views/3_Results.py")
    columns = list(at.dataframe[0].value.columns)
    assert columns[:6] == ["sweep", "trial", "state", "CV error", "± std", "fold errors"] and "duration (s)" in columns
    assert at.dataframe[0].value["fold errors"][0] == "0.222, 0.000"
    at.session_state["results_tab"] = "Compare"
    at.run()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("No 3-D error surface") and "learning rate" in c for c in captions), captions
    assert any(c.startswith("No backbone comparison") for c in captions), captions
