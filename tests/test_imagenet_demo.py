"""The built-in ImageNet-1k demo (EfficientNet-Lite0, offline): class names shipped with the repo, the
right top-1 NAME for photos shipped by scikit-image, from the engine, the CLI and the Predict page."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from apptest import APP, no_errors
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.cli import main

skimage_data = pytest.importorskip("skimage.data")
CATS = {"tabby cat", "tiger cat", "Egyptian Mau"}   # ImageNet's names for a striped house cat


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-image's coffee cup and Chelsea the cat, as PNG files a user would hand over."""
    folder = tmp_path_factory.mktemp("photos")
    paths = {"coffee": folder / "coffee.png", "chelsea": folder / "chelsea.png"}
    paths["coffee"].write_bytes(png(skimage_data.coffee()))
    paths["chelsea"].write_bytes(png(skimage_data.chelsea()))
    return paths


def test_the_class_names_are_imagenets_1000_in_index_order() -> None:
    from core.inference.imagenet import imagenet_classes
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000        # unique: a name finds its index again
    known = {0: "tench", 1: "goldfish", 207: "Golden Retriever", 281: "tabby cat", 409: "analog clock",
             948: "Granny Smith", 967: "espresso", 872: "tripod"}
    assert {i: names[i] for i in known} == known


def test_the_demo_model_names_the_photo_and_explains_it(photos: dict[str, Path]) -> None:
    from core.inference.explain import gradcam
    from core.inference.imagenet import TOP_K, demo_model
    from core.inference.predict import predict_images
    loaded = demo_model()
    assert demo_model() is loaded                                 # built once per process
    coffee, cat = predict_images(loaded, [(p.name, p) for p in photos.values()], top_k=TOP_K)
    assert coffee.top[0][0] == "espresso" and coffee.top[0][1] > 0.5, coffee.top
    assert cat.top[0][0] in CATS, cat.top
    assert len(coffee.top) == 5 and [p for _, p in coffee.top] == sorted((p for _, p in coffee.top), reverse=True)
    cam = gradcam(loaded.model, coffee.image, loaded.classes.index("espresso"))
    assert cam.shape == coffee.image.shape[:2]
    assert float(cam.max() - cam.min()) > 0.1                    # it looked somewhere, not everywhere


def test_cli_predict_imagenet_prints_the_top_5_names(photos: dict[str, Path], capsys) -> None:
    code = main(["predict", "imagenet", str(photos["coffee"]), str(photos["chelsea"])])
    out, err = capsys.readouterr()
    assert code == 0, err
    coffee, cat = out.splitlines()
    assert coffee.startswith(f"{photos['coffee']}: espresso 0.")
    assert coffee.count(",") == 4                                 # five classes by default
    assert any(cat.startswith(f"{photos['chelsea']}: {name} 0.") for name in CATS), cat
    code = main(["predict", "imagenet", str(photos["coffee"]), "--top-k", "2", "--json"])
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert code == 0 and [t["class"] for t in top][0] == "espresso" and len(top) == 2


def test_predict_page_offers_the_demo_before_any_sweep(photos: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("views/4_Predict.py").run()
    no_errors(at)
    model = next(r for r in at.radio if r.label == "Model")
    assert model.value.startswith("Built-in") and "ImageNet-1k (EfficientNet-Lite0)" in model.value
    at.file_uploader(key="images").set_value([("chelsea.png", photos["chelsea"].read_bytes(), "image/png")]).run()
    no_errors(at)
    assert len(at.image) == 2                                     # the photo and its Grad-CAM overlay
    top = next(d.value for d in at.dataframe if "probability" in d.value.columns)
    assert len(top) == 5 and top["class"].iloc[0] in CATS, top
