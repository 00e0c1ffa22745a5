"""Train/test splits and K-fold CV folds, as index arrays, with duplicates kept on one side.

Near-duplicate photos on both sides of a split leak: the model is tested on what it trained
on. `groups` (from `scan.duplicate_groups_for`) keeps each group whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


class SplitError(ValueError):
    """The data cannot be split as asked; the message says what to change."""


@dataclass
class Split:
    train: np.ndarray
    test: np.ndarray


def _groups(labels: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    return np.arange(len(labels)) if groups is None else np.asarray(groups)


def _check_classes(labels: np.ndarray, k: int, what: str) -> None:
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2:
        raise SplitError(f"{what}: needs at least 2 classes with images")
    if present.min() < k:
        smallest = int(np.flatnonzero(counts == present.min())[0])
        raise SplitError(f"{what}: class #{smallest} has only {present.min()} image(s); it needs at least {k} "
                         "(add images, merge the class, or lower the number of folds)")


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int,
                     groups: np.ndarray | None = None) -> Split:
    """A seeded, stratified hold-out of about `test_fraction`, duplicate groups kept whole.

    Done as one fold of a stratified group K-fold with K = round(1 / test_fraction), so the
    fraction is approximate (0.15 -> 1/7 = 14.3 %).
    """
    labels = np.asarray(labels)
    if not 0 < test_fraction < 1:
        raise SplitError(f"data.test_fraction: {test_fraction} must be between 0 and 1")
    k = max(2, round(1 / test_fraction))
    _check_classes(labels, k, "stratified split")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    train, test = next(folds.split(np.zeros(len(labels)), labels, _groups(labels, groups)))
    return Split(train=np.sort(train), test=np.sort(test))


def ordered_split(n: int, train_count: int, test_count: int) -> Split:
    """The first `train_count` images train (and validate), the next `test_count` test."""
    if train_count <= 0 or test_count <= 0:
        raise SplitError("ordered split: train_count and test_count must both be > 0")
    if train_count + test_count > n:
        raise SplitError(f"ordered split: train_count + test_count = {train_count + test_count} but the "
                         f"dataset has {n} images")
    return Split(train=np.arange(train_count), test=np.arange(train_count, train_count + test_count))


def kfold_indices(labels: np.ndarray, k: int, seed: int,
                  groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) positions within `labels` for each of K stratified, seeded folds."""
    labels = np.asarray(labels)
    if k < 2:
        raise SplitError(f"folds: {k}-fold CV needs k >= 2")
    _check_classes(labels, k, f"{k}-fold CV")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in folds.split(np.zeros(len(labels)), labels,
                                                              _groups(labels, groups))]
