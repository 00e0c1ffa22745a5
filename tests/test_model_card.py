"""A Transfer Lab model carries its card inside the .keras file, and uploaded models do not stay forever."""
from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import pytest
from streamlit.testing.v1 import AppTest

from core.inference.model_card import CARD_ENTRY, ModelFileError, load_model, save_model
from core.inference.uploads import UPLOAD_MAX_AGE, keep_upload, prune_uploads

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CLASSES = ["tabby", "beagle"]


def tiny_model(outputs: int = 2) -> keras.Model:
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(outputs, activation="softmax")])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model saved the way the sweep's final refit saves it."""
    folder = tmp_path_factory.mktemp("artifacts")
    return save_model(tiny_model(), folder / "best.keras", classes=CLASSES, image_size=16,
                      extra={"sweep": "pets"})


def copy_alone(model: Path, folder: Path) -> Path:
    """The .keras file alone, as a user uploads it: no card file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "upload.keras").write_bytes(model.read_bytes())
    return folder / "upload.keras"


def backdate(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_card_travels_inside_the_keras_file(saved: Path, tmp_path: Path) -> None:
    upload = copy_alone(saved, tmp_path / "elsewhere")
    loaded = load_model(upload)
    assert loaded.classes == CLASSES and loaded.image_size == 16 and loaded.card["sweep"] == "pets"
    assert keras.saving.load_model(upload, safe_mode=True).output_shape == (None, 2)


def test_a_card_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    path = save_model(tiny_model(outputs=3), tmp_path / "m.keras", classes=CLASSES, image_size=16)
    with pytest.raises(ModelFileError,
                       match=f"{CARD_ENTRY} in .*upload.keras names 2 classes, the model has 3"):
        load_model(copy_alone(path, tmp_path / "up"))


def test_a_plain_keras_model_still_loads_with_numbered_classes(tmp_path: Path) -> None:
    tiny_model().save(tmp_path / "plain.keras")
    assert load_model(tmp_path / "plain.keras").classes == ["class 0", "class 1"]


def test_the_predict_page_loader_keeps_the_class_names(saved: Path) -> None:
    from ui.models import loaded_model, save_upload
    assert loaded_model(save_upload(saved.read_bytes())).classes == CLASSES


def test_uploads_older_than_their_age_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    old, recent = keep_upload(b"old model", folder, ".keras"), keep_upload(b"recent model", folder, ".keras")
    backdate(old, UPLOAD_MAX_AGE.total_seconds() + 60)
    backdate(recent, UPLOAD_MAX_AGE.total_seconds() - 60)
    assert prune_uploads(folder) == [old]
    assert not old.exists() and recent.exists()
    assert keep_upload(b"old model", folder, ".keras") == old and old.read_bytes() == b"old model"


@pytest.fixture
def fresh_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app on an empty store and an empty data root (no sweep has a final model)."""
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "uploads" / "models"


def test_predict_page_shows_the_class_names_of_an_uploaded_model(saved: Path, fresh_app: Path) -> None:
    stale = fresh_app / "0123.keras"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an old session")
    backdate(stale, UPLOAD_MAX_AGE.total_seconds() + 60)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/4_Predict.py").run()
    assert not at.exception, at.exception
    assert not stale.exists()
    next(r for r in at.radio if r.label == "Model").set_value("Upload a .keras file").run()
    at.file_uploader(key="model_upload").upload("pets.keras", saved.read_bytes(), "application/zip").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("tabby, beagle" in c.value for c in at.caption), [c.value for c in at.caption]
