"""The K fold models of one configuration as one Keras model, and horizontal-flip test-time augmentation.

Built from built-in Keras layers only, so the saved file loads with plain `keras.saving.load_model`
and Predict and export need nothing new. In the ensemble the frozen part below the cut (the same in
every fold) runs once, flat, as in a single model; each fold's trained top is a small nested model
on it ("fold1", ...), and an Average layer takes the mean of their probabilities.

A trial of a sweep with `ensemble` saves its fold models as it trains them (`save_fold_model`), so
the final ensemble is the best trial's own folds: what K-fold CV already paid for, not a retraining.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from core.runs.artifacts import CUT_FILE, fold_file, has_fold_models
from core.training.trial import TrainedFold


def save_fold_model(folder: Path, trained: TrainedFold) -> None:
    """Keep one fold's trained classifier and the layer below which it is frozen (`TrialRunner.run`'s
    `on_fold`)."""
    folder.mkdir(parents=True, exist_ok=True)
    trained.model.save(folder / fold_file(trained.fold))
    (folder / CUT_FILE).write_text(trained.cut)


def load_fold_models(folder: Path | None, folds: int) -> tuple[list[keras.Model], str] | None:
    """The K fold models `save_fold_model` kept and their cut; None when any is missing (or no folder)."""
    import core.models.preprocessing  # noqa: F401  (registers the custom layers saved models refer to)

    if not has_fold_models(folder, folds):
        return None
    return [keras.saving.load_model(folder / fold_file(k)) for k in range(folds)], (folder / CUT_FILE).read_text()


def lowest_cut(model: keras.Model, *cuts: str) -> str:
    """Of the cuts of fold models on one backbone, the one nearest the input: every model's trained part
    lies above it, so the part below it can be shared."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    return min(cuts, key=order.__getitem__)


def fold_ensemble(models: list[keras.Model], cut: str) -> keras.Model:
    """Average of the fold classifiers' probabilities; layers up to `cut` shared (taken from the first: below
    `cut` every model holds the same frozen backbone)."""
    first = models[0]
    shared = first.get_layer(cut).output
    tops = [keras.Model(model.get_layer(cut).output, model.output, name=f"fold{k + 1}")
            for k, model in enumerate(models)]
    average = keras.layers.Average(dtype="float32", name="fold_average")([top(shared) for top in tops])
    return keras.Model(first.input, average, name=f"{first.name}_ensemble")


def flip_tta(model: keras.Model) -> keras.Model:
    """Mean of `model`'s probabilities on the image and on its mirror image (left-right).

    The flip is a fixed anti-diagonal Dense over the width axis (exact: each output is one input
    times 1), so no custom layer has to be registered to load the file.
    """
    height, width, channels = model.input_shape[1:]
    image = keras.Input((height, width, channels), name="image")
    by_width = keras.layers.Permute((1, 3, 2), name="tta_width_last")(image)
    mirror = keras.layers.Dense(width, use_bias=False, trainable=False, name="tta_flip")
    flipped = keras.layers.Permute((1, 3, 2), name="tta_width_back")(mirror(by_width))
    mirror.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    average = keras.layers.Average(dtype="float32", name="tta_average")([model(image), model(flipped)])
    return keras.Model(image, average, name=f"{model.name}_tta")
