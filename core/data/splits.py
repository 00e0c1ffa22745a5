"""Train/test splits and K-fold folds as index arrays, reproducible from a seed; a sweep's split of a
dataset with its label decisions applied inside each side (`split_decided`).

Groups (from `core.data.scan.duplicate_groups_for`) keep copies of one photo on one side: a photo in
both train and test makes the test score a memory test.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.dataset_record import Dataset
from core.data.decisions import Decisions, apply, group_rows


class SplitError(ValueError):
    """The split asked for cannot be made from these labels; the message says what to change."""


@dataclass
class Split:
    train: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        self.train = np.asarray(self.train, dtype=np.int64)
        self.test = np.asarray(self.test, dtype=np.int64)
        if np.intersect1d(self.train, self.test).size:
            raise SplitError("train and test share indices")


def _check_labels(labels: Sequence[int] | np.ndarray, groups: Sequence[int] | np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    if y.ndim != 1 or y.size == 0:
        raise SplitError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    g = np.arange(y.size) if groups is None else np.asarray(groups)
    if g.shape != y.shape:
        raise SplitError(f"{g.size} groups for {y.size} labels: give one group id per image")
    return y, g


def stratified_split(labels: Sequence[int] | np.ndarray, test_fraction: float, seed: int,
                     groups: Sequence[int] | np.ndarray | None = None) -> Split:
    """Each class split in the same proportion (to within one image), groups never cut in two.

    Groups are dealt in a seeded random order, largest first; a group goes to test while that keeps
    every class it touches within its test quota, so ungrouped classes hit the quota exactly.
    """
    if not 0 < test_fraction < 1:
        raise SplitError(f"data.test_fraction: {test_fraction} must be between 0 and 1")
    y, g = _check_labels(labels, groups)
    n_classes = int(y.max()) + 1
    quota = np.round(np.bincount(y, minlength=n_classes) * test_fraction)
    rng = np.random.default_rng(seed)
    group_ids, group_of = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(group_of == k) for k in range(len(group_ids))] if groups is not None \
        else [np.array([i]) for i in range(y.size)]
    order = rng.permutation(len(members))
    order = order[np.argsort([-len(members[k]) for k in order], kind="stable")]
    in_test = np.zeros(n_classes)
    test_parts = []
    for k in order:
        need = np.bincount(y[members[k]], minlength=n_classes)
        if np.all(in_test + need <= quota):
            in_test += need
            test_parts.append(members[k])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(y.size), test)
    if test.size == 0 or train.size == 0:
        raise SplitError(f"a test fraction of {test_fraction} leaves {'test' if test.size == 0 else 'train'} "
                         f"empty for {y.size} images; change the fraction or add images")
    return Split(train, test)


def ordered_split(n: int, train_count: int, test_count: int) -> Split:
    """First `train_count` for training, the next `test_count` for test: files kept in order."""
    if train_count < 1 or test_count < 1:
        raise SplitError("ordered split: train_count and test_count must both be > 0")
    if train_count + test_count > n:
        raise SplitError(f"ordered split: train_count + test_count = {train_count + test_count} but the "
                         f"dataset has {n} images")
    return Split(np.arange(train_count), np.arange(train_count, train_count + test_count))


def split_as(method: str, labels: np.ndarray, *, test_fraction: float, seed: int, train_count: int = 0,
             test_count: int = 0, groups: np.ndarray | None = None) -> Split:
    """The split a spec's `data.split` names: "ordered" or "stratified" (the sweep and its preview)."""
    if method == "ordered":
        return ordered_split(len(labels), train_count, test_count)
    return stratified_split(labels, test_fraction, seed, groups=groups)


def kfold_indices(labels: Sequence[int] | np.ndarray, k: int, seed: int,
                  groups: Sequence[int] | np.ndarray | None = None,
                  class_names: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, val_idx) positions within `labels` for each of k stratified folds.

    With groups, StratifiedGroupKFold: copies of a photo never straddle train and validation.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y, g = _check_labels(labels, groups)
    if k < 2:
        raise SplitError(f"folds: {k}-fold CV needs k >= 2")
    for c in np.unique(y):
        images, distinct = int(np.sum(y == c)), np.unique(g[y == c]).size
        if distinct < k:
            name = f"class '{class_names[c]}'" if class_names else f"class #{c}"
            what = ("image" if images == 1 else "images") if distinct == images else \
                f"distinct image(s) once duplicates are merged (of {images} files)"
            raise SplitError(f"{k}-fold CV: {name} has only {distinct} {what}; it needs at least {k} "
                             "(add images, merge the class, or lower the number of folds)")
    if groups is None:
        folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(y.size), y)
    else:
        folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(y.size), y, g)
    return [(np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)) for tr, va in folds]


def merge_groups(groups: Sequence[int] | np.ndarray, linked: Iterable[Sequence[int]]) -> np.ndarray:
    """int64 group id per image where the images of each `linked` set (row indices) also share one group,
    together with everything their groups held (connected components: links chain transitively)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, ids = np.unique(np.asarray(groups), return_inverse=True)
    edges = [(ids[members[0]], ids[m]) for members in linked for m in members[1:]]
    a, b = (np.array(e, dtype=np.int64) for e in zip(*edges)) if edges else (np.empty(0, np.int64),) * 2
    size = int(ids.max()) + 1 if ids.size else 0
    _, component = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(size, size)),
                                        directed=False)
    return component[ids].astype(np.int64)


@dataclass(frozen=True)
class DecidedSplit:
    """Train and test rows of a dataset with its decisions applied, and each row's copy group."""

    dataset: Dataset                   # the decisions applied
    train: np.ndarray                  # rows of `dataset`
    test: np.ndarray
    groups: np.ndarray                 # int64 group id per row: copies and content groups share one


def split_decided(found: Dataset, decisions: Decisions, copies: np.ndarray, method: str, **split: Any
                  ) -> DecidedSplit:
    """`found` (the images as found on disk; `copies`: their copy-group ids) split as `method` with
    `split`'s arguments, the decisions' content groups kept whole too, then the decisions applied inside
    each side: cleaning never moves an image between train and test, so sweeps before and after it share
    a test split. The one split of a sweep and of the Dataset page's preview."""
    groups = merge_groups(copies, group_rows(found, decisions.groups))
    cut = split_as(method, found.labels, groups=groups, **split)
    dataset = apply(found, decisions)
    row_of = {path: row for row, path in enumerate(dataset.paths)}
    kept = np.array([row_of.get(path, -1) for path in found.paths], dtype=np.int64)   # -1: excluded
    train, test = (kept[rows][kept[rows] >= 0] for rows in (np.asarray(cut.train), np.asarray(cut.test)))
    decided_groups = np.empty(len(dataset), dtype=np.int64)
    decided_groups[kept[kept >= 0]] = groups[kept >= 0]
    return DecidedSplit(dataset, train, test, decided_groups)
