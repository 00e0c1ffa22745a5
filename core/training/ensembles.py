"""The K fold models of one configuration as one Keras model, and horizontal-flip test-time augmentation.

Built from built-in Keras layers only, so the saved file loads with plain `keras.saving.load_model`
and Predict and export need nothing new. In the ensemble the frozen part below the cut (the same in
every fold) runs once, flat, as in a single model; each fold's trained top is a small nested model
on it ("fold1", ...), and an Average layer takes the mean of their probabilities.
"""
from __future__ import annotations

import keras
import numpy as np


def fold_ensemble(models: list[keras.Model], cut: str) -> keras.Model:
    """Average of the fold classifiers' probabilities; layers up to `cut` shared (taken from the first)."""
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
