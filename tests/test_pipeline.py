"""A fold's training batches through tf.data (`core.training.pipeline`): one static shape, every row each
epoch, the same batches for the same seed, the views drawn, and a fit on it equal to a fit on the arrays."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np

from core.models.augment import augmenter
from core.training.activations import ActivationCache
from core.training.pipeline import training_batches
from core.training.tracing import retraces, traced_shapes
from core.training.trial import TrialRunner
from trials import small_params

ROWS = np.arange(3, 40)


def sources(views: int = 1) -> list[np.ndarray]:
    """Images whose every pixel holds its row number plus 100 x its view, so a batch says where it came from."""
    rows = np.arange(50, dtype=np.float32)[:, None, None, None]
    return [np.broadcast_to(rows + 100 * v, (50, 4, 4, 3)).copy() for v in range(views)]


def epoch(data) -> tuple[np.ndarray, np.ndarray]:
    batches = [(x.numpy(), y.numpy()) for x, y in data]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_every_batch_is_full_and_of_one_static_shape():
    data = training_batches(sources(), np.arange(50) % 3, ROWS, 8, seed=1)
    assert data.element_spec[0].shape == (8, 4, 4, 3) and data.element_spec[1].shape == (8,)
    x, _ = epoch(data)
    assert len(x) == 40 and int(data.cardinality()) == 5                 # 37 rows wrapped to 5 full batches
    assert len(epoch(training_batches(sources(), np.zeros(50), ROWS[:5], 8, seed=1))[0]) == 5   # one batch of all


def test_each_epoch_sees_every_row_with_its_label_in_a_new_order_and_a_seed_repeats_them():
    labels = np.arange(50) % 3
    data = training_batches(sources(), labels, ROWS, 8, seed=1)
    (x1, y1), (x2, _) = epoch(data), epoch(data)
    rows1, rows2 = x1[:, 0, 0, 0].astype(int), x2[:, 0, 0, 0].astype(int)
    assert set(rows1) == set(ROWS) == set(rows2)
    np.testing.assert_array_equal(y1, labels[rows1])
    assert not np.array_equal(rows1, rows2)
    again = training_batches(sources(), labels, ROWS, 8, seed=1)
    np.testing.assert_array_equal(epoch(again)[0], x1)
    assert not np.array_equal(epoch(training_batches(sources(), labels, ROWS, 8, seed=2))[0], x1)


def test_each_row_is_drawn_from_one_of_the_cached_views():
    x, _ = epoch(training_batches(sources(3), np.zeros(50), ROWS, 8, seed=1))
    row, view = x[:, 0, 0, 0] % 100, x[:, 0, 0, 0] // 100
    assert set(row.astype(int)) == set(ROWS) and set(view.astype(int)) == {0, 1, 2}


def test_the_augmentation_runs_in_the_pipeline():
    images = [np.random.default_rng(0).uniform(0, 255, (50, 16, 16, 3)).astype(np.uint8)]
    x, y = epoch(training_batches(images, np.zeros(50), ROWS, 8, seed=1, transform=augmenter("standard", 1)))
    plain, _ = epoch(training_batches(images, np.zeros(50), ROWS, 8, seed=1))
    assert x.dtype == np.float32 and x.shape == plain.shape and x.min() >= 0 and x.max() <= 255
    assert not np.allclose(x, plain)


def test_a_fit_on_the_pipeline_equals_a_fit_on_its_batches_as_arrays():
    labels = np.arange(50) % 3
    keras.utils.set_random_seed(0)          # TensorFlow's global seed orders the shuffle with its own
    x, y = epoch(training_batches(sources(), labels, ROWS, 8, seed=1))
    models = []
    for feed in ("pipeline", "arrays"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if feed == "pipeline":
            model.fit(training_batches(sources(), labels, ROWS, 8, seed=1), epochs=1, shuffle=False, verbose=0)
        else:
            model.fit(x, y, batch_size=8, shuffle=False, epochs=1, verbose=0)
        models.append(model)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_trial_with_several_train_steps_per_execution_learns_what_it_learns_with_one(trial_data, tmp_path):
    """A GPU runs 16 steps per call into the compiled function; the folds' curves stay those of one step."""
    runner = TrialRunner(trial_data, cache=ActivationCache(tmp_path))
    params = small_params(trainable_layers=3, epochs=3)
    results = []
    for steps in (1, 4):
        runner.device = dataclasses.replace(runner.device, steps_per_execution=steps)
        with traced_shapes() as shapes:
            results.append(runner.run(params))
        assert retraces(shapes) == 0, shapes
    for one, several in zip(*(r.folds for r in results)):
        np.testing.assert_allclose(several.curves["loss"], one.curves["loss"], rtol=1e-3)
        np.testing.assert_allclose(several.curves["val_loss"], one.curves["val_loss"], rtol=1e-3)
