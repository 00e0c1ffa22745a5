"""A trained model on disk: the .keras file plus a JSON card with its classes and input size.

The card travels with the model, so `predict` and the Predict page need nothing else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras


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
    card = {"classes": list(classes), "image_size": int(image_size), **(extra or {})}
    card_path(path).write_text(json.dumps(card, indent=2))
    return path


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
    card = json.loads(card_path(path).read_text()) if card_path(path).is_file() else {}
    classes = card.get("classes") or [f"class {i}" for i in range(classes_count)]
    if len(classes) != classes_count:
        raise ModelFileError(f"{card_path(path)} names {len(classes)} classes, the model has {classes_count}")
    return LoadedModel(model=model, classes=classes, image_size=card.get("image_size", size), card=card)
