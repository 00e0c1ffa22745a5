"""Small trials on the tiny colours dataset (conftest's `tiny_dataset`): their params, and its images as one
trial's data with two interleaved (so stratified) folds; conftest's `trial_data` fixture is the latter."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.datasets import load_dataset
from core.data.images import load_image
from core.spec.sweep import TrialParams
from core.training.trial import TrialData

SIZE = 32


def small_params(**overrides) -> TrialParams:
    base = dict(backbone="mobilenetv2", weights="none", image_size=SIZE, epochs=3, batch_size=8,
                early_stopping=0, reduce_lr=0)
    return TrialParams(**{**base, **overrides})


def tiny_trial_data(tiny_dataset: Path) -> TrialData:
    ds = load_dataset(tiny_dataset)
    images = np.stack([load_image(p, SIZE) for p in ds.paths])
    perm = np.random.default_rng(0).permutation(len(ds))
    train, test = np.sort(perm[:30]), np.sort(perm[30:])
    folds = [(train[np.arange(30) % 2 != k], train[np.arange(30) % 2 == k]) for k in (0, 1)]   # interleaved: stratified
    return TrialData(images=images, labels=ds.labels, classes=ds.classes, train_rows=train, test_rows=test,
                     folds=folds, fingerprint="tiny", paths=ds.paths)
