"""The Results page's export panel in AppTest: a format chosen, exported and checked, the verified zip offered
with its parity figure and loading snippet; an export that does not match its model is not offered."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from apptest import button, no_errors
from conftest import make_image
from export_models import final_like_model, finished_sweep, jittery_model
from streamlit.testing.v1 import AppTest

TIMEOUT = 300


def panel_script() -> None:
    """The panel as the Results page draws it under the final model (sweep named in the query string)."""
    import streamlit as st

    from ui import state
    from ui.exports import export_panel
    sweep = st.query_params["sweep"]
    export_panel(state.final(sweep), sweep)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("TRANSFERLAB_STORAGE", url)
    return url


def panel(sweep: str) -> AppTest:
    at = AppTest.from_function(panel_script, default_timeout=TIMEOUT)
    at.query_params["sweep"] = sweep
    return at.run()


def downloads(at: AppTest) -> list:
    return at.get("download_button")


def test_export_is_checked_then_offered_with_its_figure_and_snippet(storage, tmp_path):
    photo = tmp_path / "red.jpg"
    make_image((200, 40, 40), seed=3).save(photo)
    model = final_like_model(tmp_path / "best.keras", temperature=2.0)
    finished_sweep(storage, tmp_path / "artifacts", "colours", model, [str(photo)])
    at = panel("colours")
    no_errors(at)
    assert not downloads(at)
    at.selectbox(key="export-format-colours").set_value("onnx").run()
    button(at, "Export as ONNX and check it").click().run()
    no_errors(at)
    assert "ONNX: max |difference|" in at.success[0].value and "over 1 image(s)" in at.success[0].value
    assert len(downloads(at)) == 1
    assert "onnxruntime.InferenceSession(\"model.onnx\")" in at.code[0].value
    assert 'card["temperature"]' in at.code[0].value     # the README's lines: the card's temperature applied
    at.selectbox(key="export-format-colours").set_value("keras").run()
    assert not downloads(at)                       # another format: nothing offered until it is checked
    at.selectbox(key="export-format-colours").set_value("onnx").run()
    assert len(downloads(at)) == 1                 # the checked ONNX zip is still there


def test_export_that_differs_from_its_model_is_not_offered(storage, tmp_path):
    finished_sweep(storage, tmp_path / "artifacts", "jumpy", jittery_model(tmp_path / "jitter.keras"), [])
    at = panel("jumpy")
    at.selectbox(key="export-format-jumpy").set_value("savedmodel").run()
    button(at, "Export as TensorFlow SavedModel and check it").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "differs from the model by" in at.error[0].value
    assert "not offered" in at.error[0].value and not downloads(at) and not at.code


def test_each_export_is_made_in_a_fresh_folder_and_leaves_nothing_on_the_server(storage, tmp_path,
                                                                                 monkeypatch):
    """Two users (or one, twice) exporting the same sweep and format: each export is new, none replaces
    or reads another's files, and the server keeps nothing once the zip is in the session."""
    home = tmp_path / "home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    model = final_like_model(tmp_path / "best.keras")
    finished_sweep(storage, tmp_path / "artifacts", "twice", model, [])
    at = panel("twice")
    at.selectbox(key="export-format-twice").set_value("keras").run()
    for _ in range(2):
        button(at, "Export as Keras (.keras) and check it").click().run()
        no_errors(at)
        assert len(downloads(at)) == 1
    left = [*home.rglob("model_card.json"), *home.rglob("*.keras"),
            *Path(tempfile.gettempdir()).glob("transferlab-export-*")]
    assert not left and not (home / "exports").exists(), left
