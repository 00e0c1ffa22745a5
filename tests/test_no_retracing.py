"""Fixed batch shapes: the trials of a small sweep train, validate and predict with each model's compiled
steps traced for one input shape, and without TensorFlow's "triggered tf.function retracing" warning (partial last
batches and odd-sized folds used to set it off)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from core.data.datasets import load_dataset
from core.data.images import load_image
from core.spec.sweep import TrialParams
from core.training.activations import ActivationCache
from core.training.tracing import retraces, traced_shapes
from core.training.trial import TrialData, TrialRunner


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def tensorflow_log():
    lines = _Lines()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(lines)
    yield lines.lines
    logger.removeHandler(lines)


@pytest.mark.slow
def test_trials_of_a_small_sweep_never_retrace(tiny_dataset, tmp_path, tensorflow_log):
    ds = load_dataset(tiny_dataset)
    images = np.stack([load_image(p, 32) for p in ds.paths])
    rows = np.random.default_rng(0).permutation(len(ds))
    train, test = np.sort(rows[:29]), np.sort(rows[29:])            # folds of 15 and 14: odd sizes
    folds = [(train[np.arange(29) % 2 != k], train[np.arange(29) % 2 == k]) for k in (0, 1)]
    data = TrialData(images=images, labels=ds.labels, classes=ds.classes, train_rows=train, test_rows=test,
                     folds=folds, fingerprint="tiny", paths=ds.paths)
    runner = TrialRunner(data, cache=ActivationCache(tmp_path))
    with traced_shapes() as shapes:
        for trainable, rate in [(0, 1e-3), (0, 1e-2), (2, 1e-3), (2, 1e-2)]:
            runner.run(TrialParams(backbone="mobilenetv2", weights="none", image_size=32, epochs=2, batch_size=8,
                                   early_stopping=0, reduce_lr=0, trainable_layers=trainable, learning_rate=rate))
    assert not [line for line in tensorflow_log if "retracing" in line]
    assert shapes and retraces(shapes) == 0          # every model's steps traced for one input shape
