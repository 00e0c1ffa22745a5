"""A model's predictions in batches of one shape: the last batch filled, so a compiled predict step is traced
once (under XLA compiled once); shared by the trial, the activation cache and the refit."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.models.accelerator import batch_sizes, gpu_count

if TYPE_CHECKING:
    import keras


def predict_fixed(model, x: np.ndarray, size: int) -> np.ndarray:
    """`model`'s outputs (float32) for the rows of `x`, at most `size` of them, from one batch of exactly `size`
    rows (the last row repeated to fill it): its compiled predict step is traced for one input shape, where a
    partial last batch would trace it again (and under XLA compile it again)."""
    return np.asarray(model.predict_on_batch(_filled(x, size)), dtype=np.float32)[:len(x)]


def _filled(rows: np.ndarray, size: int) -> np.ndarray:
    """`rows` (indices or arrays) with the last one repeated up to `size`."""
    if len(rows) == size:
        return rows
    return np.concatenate([rows, np.repeat(rows[-1:], size - len(rows), axis=0)])


def predict_scores(model: keras.Model, source: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Class probabilities for `rows` of `source`, in batches of one shape, sized to the device (faster than
    model.predict)."""
    size = batch_sizes(gpu_count())[1]
    out = []
    for i in range(0, len(rows), size):
        part = rows[i:i + size]
        rows_read = _filled(part, size)                      # padded by row index, so each row is read once
        out.append(predict_fixed(model, np.asarray(source[rows_read], dtype=np.float32), size)[:len(part)])
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))
