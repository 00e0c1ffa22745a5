"""A final model carries its open-set detector, threshold and temperature: through save and reload, every
export format, `python -m core predict` and the Predict page, a far-away image (noise) is called none of the
classes and an image like the training ones gets its class; a model without a detector says why."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from apptest import APP
from conftest import COLOURS, make_image
from export_models import SIZE, finished_sweep
from PIL import Image

from core.cli import main
from core.inference.export_files import ARRAYS_NAME, CARD_NAME, FORMATS, SUFFIXES
from core.inference.exports import export
from core.inference.model_card import LoadedModel, load_model, recard
from core.inference.predict import honesty, predict_images
from core.quality.open_set import FoldOutputs, OpenSetDetector, balanced_rows, fit_detector
from core.quality.unknowns import (
    OPEN_SET_ENTRY,
    CarriedDetector,
    arrays_bytes,
    image_features,
    refusal_line,
)
from core.search.final_unknowns import carry_unknowns
from core.spec.sweep import TrialParams

TEMPERATURE = 2.0
# Lite0 with seeded random weights: its pooled features still tell the colour images from noise, without
# converting ImageNet weights
FEATURES = TrialParams(backbone="efficientnet_lite0", weights="none", image_size=SIZE)


def training_images() -> tuple[np.ndarray, np.ndarray]:
    images = [np.asarray(make_image(colour, seed=100 * c + i).resize((SIZE, SIZE)))
              for c, colour in enumerate(COLOURS.values()) for i in range(12)]
    return np.stack(images), np.repeat(np.arange(len(COLOURS)), 12)


def small_model(path: Path) -> Path:
    """A small classifier of the colours, saved with its card (its backbone does not matter here: the
    detector's features come from the frozen backbone the card names)."""
    import keras

    from core.inference.model_card import save_model
    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    dense = keras.layers.Dense(len(COLOURS))
    model = keras.Model(inputs, keras.layers.Softmax()(dense(pooled)))
    dense.set_weights([np.eye(len(COLOURS)) * 20, np.zeros(len(COLOURS))])    # the brightest channel wins
    return save_model(model, path, classes=list(COLOURS), image_size=SIZE)


def carried_model(folder: Path, open_set: dict | None = None) -> Path:
    """A small model of the colours, its card carrying a k-NN detector fitted on the colour images
    (threshold accepting them all) and a temperature; or `open_set` as given (a reason)."""
    source = small_model(folder / "plain.keras")
    if open_set is not None:
        return recard(source, folder / "reasoned.keras", {"open_set": open_set}, {})
    images, labels = training_images()
    outputs = FoldOutputs(features=image_features(FEATURES, images), logits=np.zeros((len(labels), 3)),
                          labels=labels, folds=np.arange(len(labels)) % 3, true_logits=False)
    detector = fit_detector(outputs, "knn", accept=1.0)
    return recard(source, folder / "best.keras", {"open_set": CarriedDetector(detector, FEATURES).card(),
                                                   "temperature": TEMPERATURE},
                  {OPEN_SET_ENTRY: arrays_bytes(detector.arrays())})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return carried_model(tmp_path_factory.mktemp("carried"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An image like the training ones, and solid noise (far from every class)."""
    folder = tmp_path_factory.mktemp("photos")
    make_image(COLOURS["green"], seed=7, size=(SIZE, SIZE)).save(folder / "green.png")
    noise = np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    return {"green": folder / "green.png", "noise": folder / "noise.png"}


def decisions(loaded: LoadedModel, photos: dict[str, Path]) -> dict[str, str]:
    return {name: p.refusal or p.top[0][0] for name, p in
            zip(photos, predict_images(loaded, list(photos.items()), top_k=3))}


def test_the_detector_and_temperature_survive_save_and_reload(model_file, photos) -> None:
    loaded = load_model(model_file)
    assert loaded.temperature == TEMPERATURE and loaded.unknowns and not loaded.no_unknowns
    assert loaded.unknowns.features == FEATURES and loaded.unknowns.detector.method == "knn"
    green, noise = predict_images(loaded, [("green", photos["green"]), ("noise", photos["noise"])], top_k=3)
    assert green.refusal == "" and green.top[0][0] == "green"
    assert noise.refusal == refusal_line(loaded.unknowns.detector, noise.unknown_score)
    assert noise.unknown_score > loaded.unknowns.detector.threshold > green.unknown_score
    assert len(noise.top) == 3                                   # the ranking is still given
    raw = np.asarray(loaded.model.predict_on_batch(green.image[None].astype(np.float32)))[0]
    calibrated = raw ** (1 / TEMPERATURE) / np.sum(raw ** (1 / TEMPERATURE))
    assert [p for _, p in green.top] == pytest.approx(sorted(calibrated, reverse=True), abs=1e-6)


def test_the_cli_says_none_of_the_classes_for_noise_and_the_class_otherwise(capsys, model_file, photos) -> None:
    code = main(["predict", str(model_file), str(photos["green"]), str(photos["noise"])])
    out, err = capsys.readouterr()
    green, noise = out.splitlines()
    assert code == 0 and green.startswith(f"{photos['green']}: green ")
    assert noise.startswith(f"{photos['noise']}: looks like none of the classes (score ")
    assert "; ranking: " in noise and f"T = {TEMPERATURE:.3f}" in err


def test_a_model_without_a_detector_says_why(capsys, tmp_path, photos) -> None:
    why = "it could not be fitted (ValueError: trial 0 kept no out-of-fold scores to fit it on)"
    loaded = load_model(carried_model(tmp_path, {"reason": why}))
    assert loaded.unknowns is None and loaded.no_unknowns == why and loaded.temperature is None
    assert main(["predict", str(tmp_path / "reasoned.keras"), str(photos["noise"])]) == 0
    out, err = capsys.readouterr()
    assert "none of the classes" not in out and why in err


def test_a_final_model_whose_detector_cannot_be_fitted_is_still_kept_and_says_why(tmp_path) -> None:
    """A sweep's final model whose trial kept no out-of-fold scores: rewritten with the reason, still loadable."""
    store = finished_sweep(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts", "colours",
                           small_model(tmp_path / "best.keras"), [])
    said: list[str] = []
    record = carry_unknowns(store, "colours", store.final("colours"), say=said.append)
    assert store.final("colours") == record and record.model_path != str(tmp_path / "best.keras")
    loaded = load_model(store.final("colours", local=True).model_path)
    assert loaded.unknowns is None and loaded.temperature is None
    assert loaded.no_unknowns == "it could not be fitted (ValueError: trial 0 kept no out-of-fold scores to fit it on)"
    assert loaded.no_unknowns in honesty(loaded) and any(loaded.no_unknowns in line for line in said)


def _snippet(folder: Path) -> str:
    return (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]


@pytest.mark.slow      # two conversions per format (the model, its feature model): ~15 s each on 2 cores
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_export_format_carries_them_and_makes_the_same_decisions(model_file, photos, tmp_path, fmt) -> None:
    """The export checks itself in its own runtime (the same refusals on its check images and on noise); the
    README's snippet is then run as a user would, in a fresh process in the folder, on each photo (for the
    formats whose runtime needs no TensorFlow: a TensorFlow start per format would double the time)."""
    result = export(model_file, fmt, tmp_path / fmt, images=[photos["green"]])
    card = json.loads((result.folder / CARD_NAME).read_text())
    assert card["temperature"] == TEMPERATURE
    assert card["open_set"]["threshold"] == load_model(model_file).unknowns.detector.threshold
    assert {p.name for p in result.files} >= {ARRAYS_NAME, f"features{SUFFIXES[fmt]}"}
    if fmt in ("keras", "savedmodel"):
        return
    code = _snippet(result.folder)
    each = (f"import shutil\nfor photo in {[str(p) for p in photos.values()]!r}:\n"
            f"    shutil.copy(photo, 'photo.jpg')\n    exec({code!r})\n")
    run = subprocess.run([sys.executable, "-c", each], cwd=result.folder, text=True, capture_output=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    said = run.stdout.strip().splitlines()
    expected = decisions(load_model(model_file), photos)
    assert said[0].split()[0] == expected["green"] == "green", said
    assert said[1].startswith("looks like none of the classes (score ") and expected["noise"].startswith(said[1][:40])


def test_the_predict_page_says_none_of_the_classes_for_noise(model_file, photos, monkeypatch, tmp_path) -> None:
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/4_Predict.py").run()
    next(r for r in at.radio if r.label == "Model").set_value("Upload a .keras file").run()
    at.file_uploader(key="model_upload").upload("colours.keras", model_file.read_bytes(), "application/zip").run()
    uploads = [(name + ".png", photo.read_bytes(), "image/png") for name, photo in photos.items()]
    at.file_uploader(key="images").set_value(uploads).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any(f"T = {TEMPERATURE:.2f}" in c.value and "knn on the frozen" in c.value for c in at.caption), \
        [c.value for c in at.caption]
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("looks like none of the classes (score "), warnings
    assert any(m.value.startswith("**green**") for m in at.markdown), [m.value for m in at.markdown]


def test_a_compact_bank_is_float16_class_balanced_and_capped_its_threshold_set_against_it() -> None:
    """A bank cut to 300 of 1,050 images still accepts ~95% of new in-distribution images (its threshold is
    set against the cut bank, whose neighbours are further away) and refuses far ones, as the full one does."""
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(50, int), np.ones(500, int), np.full(500, 2)]
    centres = np.eye(3, 8) * 6

    def draw(classes: np.ndarray) -> np.ndarray:
        return rng.normal(size=(len(classes), 8)) + centres[classes]
    outputs = FoldOutputs(features=draw(labels), logits=np.zeros((len(labels), 3)), labels=labels,
                          folds=np.arange(len(labels)) % 3, true_logits=False)
    compact, full = fit_detector(outputs, "knn", max_bank=300), fit_detector(outputs, "knn", max_bank=None)
    arrays = compact.arrays()
    assert arrays["bank"].dtype == np.float16 and arrays["bank"].shape == (300, 8)
    assert np.bincount(labels[balanced_rows(labels, 300)]).tolist() == [50, 125, 125]   # the small class whole
    again = OpenSetDetector.from_card(compact.card(), arrays)
    new, far = draw(rng.choice(labels, 2000)), rng.normal(size=(200, 8)) - 6
    assert np.array_equal(again.refuses(features=new), compact.refuses(features=new))
    for detector in (compact, full):
        assert 0.9 <= 1 - detector.refuses(features=new).mean() <= 0.99 and detector.refuses(features=far).all()
