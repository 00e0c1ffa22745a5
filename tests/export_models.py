"""Real tiny models for the export tests: one built like the product's final model, one whose predictions
no export can reproduce (fresh noise on every call), and a sweep whose final model is either."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from core.runs.records import FinalModel
from core.runs.store import RunStore
from core.spec.sweep import DataSpec, SweepSpec, TrialParams

CLASSES = ["red", "green", "blue"]
SIZE = 32


@keras.saving.register_keras_serializable(package="transferlab_tests")
class Jitter(keras.layers.Layer):
    """Adds new uniform noise on every call, in inference too: a model that cannot match its export."""

    def call(self, inputs):
        return inputs + keras.random.uniform(keras.ops.shape(inputs), maxval=2.0)


def final_like_model(path: Path, **card: Any) -> Path:
    """EfficientNet-Lite0 (random weights, 32 px) with a dense head, saved with its card (plus `card`) as a
    refit does."""
    from core.inference.model_card import save_model
    from core.models.classifier import build_classifier
    params = TrialParams(backbone="efficientnet_lite0", weights="none", image_size=SIZE, head="dense_dropout",
                         dense_units=16)
    model = build_classifier(params, len(CLASSES)).model
    return save_model(model, path, classes=CLASSES, image_size=SIZE, extra={"params": {"image_size": SIZE}, **card})


def jittery_model(path: Path) -> Path:
    from core.inference.model_card import save_model
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    logits = Jitter()(keras.layers.Dense(len(CLASSES))(x))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    return save_model(model, path, classes=CLASSES, image_size=SIZE)


def finished_sweep(storage: str, artifacts: Path, name: str, model_path: Path, test_paths: list[str]
                   ) -> RunStore:
    """A sweep whose final model is `model_path`, tested on `test_paths`, as a refit leaves it."""
    store = RunStore(storage, artifacts_dir=artifacts)
    store.create_sweep(SweepSpec(name=name, data=DataSpec(dataset="colours")))
    test = {"classes": CLASSES, "y_true": [0] * len(test_paths), "scores": [[1, 0, 0]] * len(test_paths),
            "paths": test_paths, "positive_class": None}
    store.set_final(name, FinalModel(trial=0, cv_error=0.1, params={"image_size": SIZE}, epochs=1,
                                     model_path=str(model_path), test=test, train=test, test_accuracy=0.9,
                                     created="now"))
    return store
