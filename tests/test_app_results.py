"""The Results page's summary band (AppTest): the verdict on top, before any tab, for a refit and for a
fold ensemble without one, and the train split named for what it holds."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import page
from conftest import app_data_root, write_class_folders
from results_records import recorded_sweep
from streamlit.testing.v1 import AppTest

from core.text import plain


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


def _cell(paths: list[str], model: str | None) -> None:
    from core.runs.evaluation import Evaluation
    from ui.confusion_cells import cell_images
    scores = [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]]
    cell_images(Evaluation(["blue", "green", "red"], [2, 2, 2], scores, paths=paths), (2, 1), "k", model_path=model)


def shown_as_text(*captions: str) -> list[str]:
    return [plain(c) for c in captions]          # file and class names are anyone's: shown as text


def red_images(tmp_path: Path) -> list[str]:
    return [str(p) for p in sorted((write_class_folders(tmp_path / "data", per_class=3) / "red").glob("*.jpg"))]


def test_a_cells_images_come_with_their_scores(tmp_path: Path) -> None:
    at = AppTest.from_function(_cell, args=(red_images(tmp_path), None), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "True red, predicted green**: 2 images" in at.markdown[0].value
    assert [c for image in at.image for c in image.captions] == shown_as_text(
        "green 0.80 · red 0.10 · red_000.jpg", "green 0.70 · red 0.10 · red_002.jpg")
    assert not at.toggle                                             # no final model: no Grad-CAM offered


@pytest.mark.slow
def test_a_cells_grad_cam_toggle_overlays_the_final_models_heat_maps(tmp_path: Path) -> None:
    import keras

    from core.inference.model_card import save_model
    pixels = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(pixels))
    model = keras.Model(pixels, keras.layers.Dense(3, activation="softmax")(features))
    path = save_model(model, tmp_path / "m.keras", classes=["blue", "green", "red"], image_size=16)
    at = AppTest.from_function(_cell, args=(red_images(tmp_path), str(path)), default_timeout=120).run()
    shown = len(at.image)
    at.toggle(key="k-cell-cam").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    maps = [c for image in at.image[shown:] for c in image.captions]
    assert maps == shown_as_text("red_000.jpg: where it sees green", "red_002.jpg: where it sees green"), maps
