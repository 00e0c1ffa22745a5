"""Image captions are Markdown in the browser: a file or class name someone else chose must show as its
text there, never as an image fetched from elsewhere, a link or formatting (Streamlit's AppTest)."""
from __future__ import annotations

import io
from pathlib import Path

import keras
import pytest
from apptest import APP
from conftest import app_data_root, make_image
from streamlit.testing.v1 import AppTest

from core.inference.model_card import save_model

IMAGE, BOLD, LINK = "![x](x.png)", "**b**", "[l](http:x)"     # file names hold no '/', so no full URLs


def captions(at: AppTest) -> list[str]:
    """The captions of every st.image on the page, as the browser receives them."""
    return [caption for image in at.image for caption in image.captions]


def inert(caption: str, *crafted: str) -> bool:
    """The caption shows the crafted names' text, with none of their Markdown left to act."""
    return all(c not in caption for c in crafted) and "x.png" in caption


def test_the_samples_grid_shows_a_crafted_file_name_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    root = app_data_root(tmp_path, monkeypatch, per_class=3)
    make_image((200, 40, 40), seed=7).save(root / "colours" / "red" / f"{IMAGE} {BOLD}.jpg")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/1_Dataset.py").run()
    assert not at.exception, [e.value for e in at.exception]
    crafted = [c for c in captions(at) if "x.png" in c]
    assert crafted and all(inert(c, IMAGE, BOLD) for c in crafted), crafted


def test_predict_captions_show_crafted_class_and_file_names_as_text(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    app_data_root(tmp_path, monkeypatch, per_class=2)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    pixels = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(pixels))
    model = keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(features))
    classes = [f"{IMAGE} {BOLD}", f"{LINK} {IMAGE}"]
    path = save_model(model, tmp_path / "m.keras", classes=classes, image_size=16)
    photo = io.BytesIO()
    make_image((200, 40, 40), seed=3).save(photo, format="PNG")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/4_Predict.py").run()
    next(r for r in at.radio if r.label == "Model").set_value("Upload a .keras file").run()
    at.file_uploader(key="model_upload").upload("m.keras", path.read_bytes(), "application/zip").run()
    at.file_uploader(key="images").upload(f"{IMAGE} {BOLD}.png", photo.getvalue(), "image/png").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    shown = captions(at)
    assert len(shown) == 2 and shown[1].startswith("Grad-CAM for "), shown      # the photo, its heat map
    assert all(inert(c, IMAGE, BOLD, LINK) for c in shown), shown


def _confusion_cell_page(model_path: str, image_path: str, classes: list[str]) -> None:
    """One confusion cell (true 0, predicted 1) holding one image, with the final model's heat maps offered."""
    import numpy as np

    from core.runs.evaluation import Evaluation
    from ui.confusion_cells import cell_images
    ev = Evaluation(classes, np.array([0]), np.array([[0.2, 0.8]]), paths=[image_path])
    cell_images(ev, (0, 1), "cell", model_path=model_path)


def test_confusion_cell_heat_map_captions_show_crafted_class_and_file_names_as_text(tmp_path: Path) -> None:
    pixels = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(pixels))
    model = keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(features))
    classes = [f"{LINK} {IMAGE}", f"{IMAGE} {BOLD}"]
    path = save_model(model, tmp_path / "m.keras", classes=classes, image_size=16)
    image = tmp_path / f"{IMAGE} {BOLD}.png"
    make_image((200, 40, 40), seed=3).save(image)
    at = AppTest.from_function(_confusion_cell_page, args=(str(path), str(image), classes), default_timeout=120)
    at.run()
    next(t for t in at.toggle if t.label == "Grad-CAM").set_value(True).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    shown = captions(at)
    assert len(shown) == 2 and "where it sees" in shown[1], shown      # the cell's image, its heat map
    assert all(inert(c, IMAGE, BOLD, LINK) for c in shown), shown
