"""A trained model on disk: the .keras file, its card (classes and input size) inside it.

A Keras 3 `.keras` file is a zip; the card is one more entry in it (CARD_ENTRY), which Keras ignores
when loading (safe mode too), so the file alone is enough for `predict` and the Predict page, also
after an upload. A JSON copy of the card is kept beside the file for exports, and read for models
saved before the card moved inside.

A model file may come from anyone (an upload), so before Keras opens it the zip goes through the
archive checks every archive the app opens gets (`core.data.archives.check_zip`: sizes, ratio, links),
and once loaded the model must be one image input (batch, H, W, 3) to one output (batch, classes).
Messages name the file as the caller shows it (`name`): an upload's own name, never the server's path.

A sweep's final model also carries what makes its answers honest (`core.quality.unknowns`): the temperature
its probabilities are calibrated with, and an open-set detector (its numbers in the card, its arrays in one
more entry) that says when an image looks like none of the classes; or, in the card, why it has none.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from core.data.archives import ArchiveError, check_zip

if TYPE_CHECKING:
    from core.quality.unknowns import CarriedDetector

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
    unknowns: CarriedDetector | None = None    # the open-set detector the model carries
    no_unknowns: str = ""                       # why it carries none
    temperature: float | None = None            # its probabilities' calibration (None: shown as they come)

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's probabilities (n, C) scaled by its temperature; as they come without one."""
        from core.results.calibration import logits_of, softmax
        if self.temperature is None:
            return np.asarray(probabilities, dtype=np.float64)
        return softmax(logits_of(probabilities), self.temperature)


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


def recard(source: Path, target: Path, updates: dict[str, Any], entries: dict[str, bytes]) -> Path:
    """A copy of the .keras file `source` at `target`, its card updated with `updates` and `entries` (name:
    bytes) added or replaced; the JSON copy of the card written beside it, as `save_model` does."""
    card, _ = _read_card(Path(source), str(source))
    text = json.dumps({**card, **updates}, indent=2)
    replaced = {CARD_ENTRY, *entries}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename not in replaced:
                new.writestr(info, old.read(info))
        new.writestr(CARD_ENTRY, text)
        for entry, data in entries.items():
            new.writestr(entry, data)
    card_path(target).write_text(text)
    return target


def _unknowns(path: Path, card: dict[str, Any], name: str) -> tuple[CarriedDetector | None, str]:
    """The detector the card names, its arrays read from the file's own entry (size checked first)."""
    from core.quality.unknowns import MAX_ARRAYS_BYTES, OPEN_SET_ENTRY, carried

    def arrays() -> bytes:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(OPEN_SET_ENTRY)
            except KeyError:
                raise ValueError(f"{name} has no {OPEN_SET_ENTRY}") from None
            if info.file_size > MAX_ARRAYS_BYTES:
                raise ValueError(f"{OPEN_SET_ENTRY} in {name} is {info.file_size:,} bytes, more than a detector's")
            return archive.read(info)
    return carried(card, arrays)


def _temperature(card: dict[str, Any], where: str) -> float | None:
    value = card.get("temperature")
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 < value < float("inf"):
        raise ModelFileError(f"{where}: 'temperature' must be a positive number, not {value!r}")
    return float(value)


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
    unknowns, no_unknowns = _unknowns(path, card, name)
    return LoadedModel(model=model, classes=classes, image_size=image_size, card=card, unknowns=unknowns,
                       no_unknowns=no_unknowns, temperature=_temperature(card, where))
