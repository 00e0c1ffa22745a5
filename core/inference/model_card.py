"""A trained model on disk: the .keras file, its card (classes and input size) inside it.

A Keras 3 `.keras` file is a zip; the card is one more entry in it (CARD_ENTRY), which Keras ignores
when loading (safe mode too), so the file alone is enough for `predict` and the Predict page, also
after an upload. A JSON copy of the card is kept beside the file for exports, and read for models
saved before the card moved inside.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

CARD_ENTRY = "transferlab_card.json"
MAX_CARD_BYTES = 1 << 20   # a card is a few kB; a bigger entry in an uploaded file is not read


class ModelFileError(ValueError):
    """A model file is missing or not a Transfer Lab / Keras model."""


@dataclass
class LoadedModel:
    model: keras.Model
    classes: list[str]
    image_size: int
    card: dict[str, Any]


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(model: keras.Model, path: Path, *, classes: list[str], image_size: int,
               extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    card = json.dumps({"classes": list(classes), "image_size": int(image_size), **(extra or {})}, indent=2)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(CARD_ENTRY, card)
    card_path(path).write_text(card)
    return path


def _read_card(path: Path) -> tuple[dict[str, Any], str]:
    """The card inside the .keras file, else the one beside it, else none; with where it was found."""
    where = f"{CARD_ENTRY} in {path}"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(CARD_ENTRY)
            if info.file_size > MAX_CARD_BYTES:
                raise ModelFileError(f"{where} is {info.file_size:,} bytes, more than a card can be")
            text = archive.read(info)
    except KeyError:
        beside = card_path(path)
        if not beside.is_file():
            return {}, ""
        where, text = str(beside), beside.read_bytes()
    try:
        card = json.loads(text)
    except ValueError as error:
        raise ModelFileError(f"{where} is not a JSON card ({error})") from None
    if not isinstance(card, dict):
        raise ModelFileError(f"{where} is not a JSON object")
    return card, where


def load_model(path: str | Path) -> LoadedModel:
    """Load a .keras model; classes and size from its card, or from the model itself without one."""
    import core.models.preprocessing  # noqa: F401  (registers the custom layers saved models refer to)

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ModelFileError(f"{path} is not a loadable Keras model ({type(error).__name__}: {error})") from None
    size = int(model.input_shape[1] or 224)
    classes_count = int(model.output_shape[-1])
    card, where = _read_card(path)
    classes = card.get("classes") or [f"class {i}" for i in range(classes_count)]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f"{where}: 'classes' must be a list of names")
    if len(classes) != classes_count:
        raise ModelFileError(f"{where} names {len(classes)} classes, the model has {classes_count}")
    image_size = card.get("image_size", size)
    if type(image_size) is not int or image_size < 1:
        raise ModelFileError(f"{where}: 'image_size' must be a positive whole number, not {image_size!r}")
    return LoadedModel(model=model, classes=classes, image_size=image_size, card=card)
