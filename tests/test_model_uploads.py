"""Hostile model files: a .keras zip bomb is refused before anything inflates, and a model that is not one
image input to one output, or not a model at all, is refused with one line that shows no server path."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import pytest
from streamlit.testing.v1 import AppTest

from core.inference.model_card import ModelFileError, load_model

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ROOT = Path(__file__).resolve().parents[1]
BOMB_BYTES = 512 << 20          # what config.json inflates to; the file itself is about 0.5 MB
HEADROOM = 256 << 20            # address space the loader may take beyond what it held after importing

# Loads the file under an address-space cap of HEADROOM past what the process holds after importing
# Keras, and prints what happened and how far its peak resident memory grew while loading.
_LOADER = """
import resource, sys
from core.inference.model_card import ModelFileError, load_model

def vm_bytes():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmSize:"))
    return int(line.split()[1]) * 1024

cap = vm_bytes() + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_model(sys.argv[1])
    outcome = "loaded"
except ModelFileError as error:
    outcome = f"refused: {error}"
except MemoryError:
    outcome = "MemoryError"
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(f"{grown}\\n{outcome}")
"""


def keras_bomb(path: Path, inflated: int = BOMB_BYTES) -> Path:
    """A .keras-like zip whose config.json is `inflated` bytes of zeros, streamed (this test stays small)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        with archive.open("config.json", "w", force_zip64=True) as out:
            block = bytes(1 << 20)
            for _ in range(inflated >> 20):
                out.write(block)
        archive.writestr("model.weights.h5", b"")
    return path


def test_a_keras_zip_bomb_is_refused_before_it_inflates(tmp_path: Path) -> None:
    bomb = keras_bomb(tmp_path / "bomb.keras")
    assert bomb.stat().st_size < 2 << 20
    run = subprocess.run([sys.executable, "-c", _LOADER, str(bomb), str(HEADROOM)], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    grown_kb, outcome = run.stdout.strip().splitlines()[-2:]
    assert outcome.startswith(f"refused: {bomb} inflates more than 100 times its size"), outcome
    assert outcome.endswith("refusing the archive as a zip bomb"), outcome
    assert int(grown_kb) < 64 * 1024, f"peak memory grew by {int(grown_kb) // 1024} MB while refusing"


def save(model: keras.Model, path: Path) -> Path:
    model.save(path)
    return path


def grayscale_model() -> keras.Model:
    return keras.Sequential([keras.Input((16, 16, 1)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(2, activation="softmax")])


def text_model() -> keras.Model:
    return keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(50, 4),
                             keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(2, activation="softmax")])


def two_outputs_model() -> keras.Model:
    image = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    return keras.Model(image, [keras.layers.Dense(2, activation="softmax")(pooled),
                               keras.layers.Dense(3, activation="softmax")(pooled)])


@pytest.mark.parametrize(("build", "message"), [
    (grayscale_model, r"takes images of shape \(batch, 16, 16, 1\).*3 colour channels"),
    (text_model, r"takes input of shape \(batch, 12\).*\(batch, height, width, 3\)"),
    (two_outputs_model, "has 2 outputs; Transfer Lab needs one"),
])
def test_a_model_that_is_not_one_image_input_to_one_output_is_refused_in_one_line(
        tmp_path: Path, build, message: str) -> None:
    path = save(build(), tmp_path / "m.keras")
    with pytest.raises(ModelFileError, match=message) as refused:
        load_model(path, name="mine.keras")
    assert "\n" not in str(refused.value) and str(refused.value).startswith("mine.keras ")


def test_random_bytes_are_not_a_keras_model_file_and_the_path_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "server" / "0123abcd.keras"
    path.parent.mkdir()
    path.write_bytes(os.urandom(4096))
    with pytest.raises(ModelFileError, match=r"^upload\.keras is not a Keras model file") as refused:
        load_model(path, name="upload.keras")
    assert str(tmp_path) not in str(refused.value) and "\n" not in str(refused.value)


@pytest.fixture
def predict_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Upload a file as a model on the Predict page (the app on its own empty store); the page's errors."""
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))

    def upload(name: str, data: bytes, page: bool = False):
        """The page's error messages after the upload; with `page`, the page itself."""
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.switch_page("views/4_Predict.py").run()
        next(r for r in at.radio if r.label == "Model").set_value("Upload a .keras file").run()
        at.file_uploader(key="model_upload").upload(name, data, "application/zip").run()
        assert not at.exception, [e.value for e in at.exception]
        return at if page else [e.value for e in at.error]
    return upload


def test_predict_page_says_what_is_wrong_with_an_uploaded_file(predict_upload, tmp_path: Path) -> None:
    [junk] = predict_upload("holiday.keras", os.urandom(4096))
    shown = junk.replace("\\", "")     # the Markdown escapes plain() adds
    assert shown.startswith("holiday.keras is not a Keras model file") and str(tmp_path) not in shown, junk
    gray = save(grayscale_model(), tmp_path / "gray.keras").read_bytes()
    [wrong] = predict_upload("gray.keras", gray)
    shown = wrong.replace("\\", "")
    assert shown.startswith("gray.keras takes images of shape (batch, 16, 16, 1)"), wrong
    assert str(tmp_path) not in shown


def test_an_uploaded_sequential_model_gets_its_heat_map(predict_upload, tmp_path: Path) -> None:
    """Keras's Sequential models have no output names, which Grad-CAM looks the last layer up by."""
    import io

    from conftest import make_image
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    photo = io.BytesIO()
    make_image((200, 40, 40), seed=3).save(photo, format="PNG")
    at = predict_upload("seq.keras", save(model, tmp_path / "seq.keras").read_bytes(), page=True)
    at.file_uploader(key="images").upload("red.png", photo.getvalue(), "image/png").run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    assert [c for image in at.image for c in image.captions][1].startswith("Grad-CAM for ")


def test_a_card_whose_image_size_the_model_cannot_take_is_refused(tmp_path: Path) -> None:
    from core.inference.model_card import save_model
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    path = save_model(model, tmp_path / "m.keras", classes=["a", "b"], image_size=32)
    with pytest.raises(ModelFileError, match=r"^transferlab_card.json in m.keras: 'image_size' is 32, but the "
                                             r"model takes 16 x 16 px images$"):
        load_model(path, name="m.keras")


def test_a_model_description_too_big_to_parse_is_refused_unread(tmp_path: Path) -> None:
    """Stored, not compressed, so no ratio gives it away: Keras would read and parse all of it."""
    path = tmp_path / "big.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        with archive.open("config.json", "w") as out:
            for _ in range(40):
                out.write(b" " * (1 << 20))
    with pytest.raises(ModelFileError, match=r"^big.keras: config.json would unpack to 41,943,040 bytes, more "
                                             r"than the 33,554,432 a model's description may take"):
        load_model(path, name="big.keras")
