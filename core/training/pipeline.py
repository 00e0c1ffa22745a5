"""A fold's training batches as a tf.data pipeline.

tf.data rather than a `keras.utils.PyDataset`: the rows are gathered from the (memory-mapped) sources in a
parallel map beside the compiled step, the augmentation's Keras preprocessing layers run in the pipeline's
graph instead of eagerly per batch, and the next batches are prefetched while a step runs, so a GPU does
not wait on Python. Every batch has one static shape (the epoch wraps round into whole batches), so the
compiled train step is traced, and under XLA compiled, once.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def training_batches(sources: list[np.ndarray], labels: np.ndarray, rows: np.ndarray, batch_size: int,
                     seed: int, transform: keras.Sequential | None = None) -> tf.data.Dataset:
    """One epoch of full, shuffled batches of `rows`, reshuffled every time Keras iterates it (each epoch).

    `sources` holds alternative versions of every row (the original, then cached augmented views); each
    row is drawn from one of them at random, so an epoch's size never changes. The epoch's last batch is
    made up with rows of the next shuffle (an epoch sees every row at least once). `transform` (float RGB
    0..255 in and out) augments each batch; the same seed gives the same batches.
    """
    rows = np.asarray(rows, dtype=np.int64)
    batch = max(1, min(batch_size, len(rows)))       # fewer rows than a batch: one batch of them all
    steps = -(-len(rows) // batch)
    order = (tf.data.Dataset.from_tensor_slices(rows)
             .shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
             .repeat().take(steps * batch))
    versions = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).map(
        lambda v: v % len(sources))
    shape = (batch, *sources[0].shape[1:])

    def gather(picked: np.ndarray, version: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(sources) == 1:
            x = sources[0][picked]
        else:
            x = np.stack([sources[v][r] for r, v in zip(picked, version)])
        return x.astype(np.float32, copy=False), labels[picked].astype(np.int64)

    def load(picked: tf.Tensor, version: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(gather, [picked, version], (tf.float32, tf.int64), stateful=False)
        return tf.ensure_shape(x, shape), tf.ensure_shape(y, (batch,))

    data = (tf.data.Dataset.zip(order, versions).batch(batch, drop_remainder=True)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE))
    if transform is not None:
        data = data.map(lambda x, y: (transform(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
