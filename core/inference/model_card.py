"""A trained model on disk: the .keras file, its card (classes and input size) inside it.

A Keras 3 `.keras` file is a zip; the card is one more entry in it (CARD_ENTRY), which Keras ignores
when loading (safe mode too), so the file alone is enough for `predict` and the Predict page, also
after an upload. A JSON copy of the card is kept beside the file for exports, and read for models
saved before the card moved inside.

A model file may come from anyone (an upload), so before Keras opens it the zip goes through the
archive checks every archive the app opens gets (`core.data.archives.check_zip`: sizes, ratio, links),
and once loaded the model must be one image input (batch, H, W, 3) to one output (batch, classes).
Messages name the file as the caller shows it (`name`): an upload's own name, never the server's path.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from core.data.archives import ArchiveError, check_zip

CARD_ENTRY = "transferlab_card.json"
MAX_CARD_BYTES = 1 << 20   # a card is a few kB; a bigger entry in an uploaded file is not read
MAX_JSON_BYTES = 32 << 20  # config.json / metadata.json, which Keras reads whole and parses


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


def _read_card(path: Path, name: str) -> tuple[dict[str, Any], str]:
    """The card inside the .keras file (`name` in messages), else the one beside it, else none; with
    where it was found."""
    where = f"{CARD_ENTRY} in {name}"
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


def _check_archive(path: Path, name: str) -> None:
    """Refuse a file Keras would open as a zip unless it passes the archive checks, before it inflates."""
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{name} is not a Keras model file "
                             "(a .keras file is a zip archive; this is not one)")
    try:
        members = check_zip(path, name=name)
    except ArchiveError as error:
        raise ModelFileError(str(error)) from None
    for info in members:
        if info.filename.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise ModelFileError(f"{name}: {info.filename} would unpack to {info.file_size:,} bytes, more "
                                 f"than the {MAX_JSON_BYTES:,} a model's description may take; refusing the file")


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def _check_image_classifier(model: keras.Model, name: str) -> None:
    """One input of RGB images (batch, H, W, 3), square or of any size, and one output (batch, classes)."""
    feeds = "Transfer Lab feeds it RGB images of shape (batch, height, width, 3): 3 colour channels"
    if len(model.inputs) != 1:
        raise ModelFileError(f"{name} has {len(model.inputs)} inputs; {feeds}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        what = "images" if len(shape) == 4 else "input"
        raise ModelFileError(f"{name} takes {what} of shape {_shape(shape)}; {feeds}")
    if None not in shape[1:3] and shape[1] != shape[2]:
        raise ModelFileError(f"{name} takes images of shape {_shape(shape)}; "
                             "Transfer Lab feeds square images")
    if len(model.outputs) != 1:
        raise ModelFileError(f"{name} has {len(model.outputs)} outputs; Transfer Lab needs one, "
                             "the class probabilities (batch, classes)")
    out = tuple(model.outputs[0].shape)
    if len(out) != 2:
        raise ModelFileError(f"{name} gives output of shape {_shape(out)}; Transfer Lab needs the class "
                             "probabilities (batch, classes)")


def load_model(path: str | Path, *, name: str | None = None) -> LoadedModel:
    """Load a .keras model; classes and size from its card, or from the model itself without one.

    `name`: the file as messages call it (an upload's own name); default its path.
    """
    import core.models.preprocessing  # noqa: F401  (registers the custom layers saved models refer to)

    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise ModelFileError(f"model file {name} does not exist")
    _check_archive(path, name)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0].replace(str(path), name)
        raise ModelFileError(f"{name} is not a loadable Keras model "
                             f"({type(error).__name__}: {reason})") from None
    _check_image_classifier(model, name)
    if isinstance(model, keras.Sequential):   # the same layers as a graph: Grad-CAM needs its output names
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    size = int(model.input_shape[1] or 224)
    classes_count = int(model.output_shape[-1])
    card, where = _read_card(path, name)
    classes = card.get("classes") or [f"class {i}" for i in range(classes_count)]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f"{where}: 'classes' must be a list of names")
    if len(classes) != classes_count:
        raise ModelFileError(f"{where} names {len(classes)} classes, the model has {classes_count}")
    image_size = card.get("image_size", size)
    if type(image_size) is not int or image_size < 1:
        raise ModelFileError(f"{where}: 'image_size' must be a positive whole number, not {image_size!r}")
    if model.input_shape[1] is not None and image_size != size:
        raise ModelFileError(f"{where}: 'image_size' is {image_size}, but the model takes {size} x {size} px images")
    return LoadedModel(model=model, classes=classes, image_size=image_size, card=card)
