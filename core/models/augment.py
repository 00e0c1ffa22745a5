"""Augmentation presets for training images (the reports' rotation, shifts, zoom, shear, flip)."""
from __future__ import annotations

import keras
import numpy as np

from core.spec.sweep import AUGMENTATIONS


def augmenter(kind: str, seed: int = 0) -> keras.Sequential | None:
    """A random image transform on float RGB 0..255 batches, or None for 'none'."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation: {kind!r} is not one of {', '.join(AUGMENTATIONS)}")
    if kind == "none":
        return None
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if kind in ("standard", "full"):
        layers += [keras.layers.RandomRotation(0.08, fill_mode="reflect", seed=seed + 1),
                   keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
                   keras.layers.RandomZoom(0.15, fill_mode="reflect", seed=seed + 3)]
    if kind == "full":
        layers.append(keras.layers.RandomShear(x_factor=0.15, y_factor=0.15, fill_mode="reflect", seed=seed + 4))
    return keras.Sequential(layers, name=f"augment_{kind}")


def augment_batch(transform: keras.Sequential | None, images: np.ndarray) -> np.ndarray:
    """Float32 batch, transformed when a transform is given (training only)."""
    batch = np.asarray(images, dtype=np.float32)
    if transform is None:
        return batch
    return keras.ops.convert_to_numpy(transform(batch, training=True))
