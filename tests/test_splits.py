"""Splits and folds: disjoint, stratified, seeded, and duplicates never on both sides."""
import numpy as np
import pytest

from core.data.splits import Split, SplitError, kfold_indices, ordered_split, stratified_split

LABELS = np.repeat([0, 1, 2], [40, 30, 20])


def test_stratified_split_is_disjoint_stratified_and_seeded():
    split = stratified_split(LABELS, 0.25, seed=3)
    assert not set(split.train) & set(split.test)
    assert len(split.train) + len(split.test) == len(LABELS)
    for c, n in enumerate(np.bincount(LABELS)):
        assert abs(np.sum(LABELS[split.test] == c) - n / 4) <= 1
    again = stratified_split(LABELS, 0.25, seed=3)
    assert np.array_equal(split.test, again.test)
    assert not np.array_equal(split.test, stratified_split(LABELS, 0.25, seed=4).test)


def test_duplicate_groups_stay_on_one_side():
    rng = np.random.default_rng(0)
    groups = np.arange(len(LABELS))
    for first in range(0, 80, 8):                 # groups of three same-class near-copies
        groups[first + 1] = groups[first + 2] = groups[first]
    split = stratified_split(LABELS, 0.2, seed=1, groups=groups)
    assert not set(groups[split.train]) & set(groups[split.test])
    for train, val in kfold_indices(LABELS, 3, seed=rng.integers(100), groups=groups):
        assert not set(groups[train]) & set(groups[val])


def test_kfold_covers_every_item_once_as_validation():
    folds = kfold_indices(LABELS, 5, seed=0)
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation) == list(range(len(LABELS)))
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == len(LABELS)
        assert abs(np.sum(LABELS[val] == 2) - 4) <= 1


def test_ordered_split_is_exact():
    split = ordered_split(472, 301, 171)
    assert split.train.tolist() == list(range(301)) and split.test.tolist() == list(range(301, 472))
    with pytest.raises(SplitError, match="dataset has 100 images"):
        ordered_split(100, 80, 30)


def test_too_few_images_for_the_folds_says_what_to_do():
    labels = np.array([0, 0, 0, 1, 1])
    with pytest.raises(SplitError, match="class #1 has only 2 image.*lower the number of folds"):
        kfold_indices(labels, 3, seed=0)


@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.5])
def test_stratified_split_hits_each_class_quota_within_one(fraction):
    labels = np.repeat([0, 1, 2, 3], [37, 11, 5, 101])
    split = stratified_split(labels, fraction, seed=7)
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(len(labels)))
    for c, n in enumerate(np.bincount(labels)):
        assert abs(np.sum(labels[split.test] == c) - n * fraction) <= 1


def test_big_duplicate_groups_stay_whole_and_mixed_label_groups_too():
    labels = np.repeat([0, 1], [50, 50])
    groups = np.arange(100)
    groups[:10] = 0            # ten copies of one photo
    groups[[45, 55]] = 45      # the same photo under both labels
    for seed in range(5):
        split = stratified_split(labels, 0.3, seed=seed, groups=groups)
        assert not set(groups[split.train]) & set(groups[split.test])
        assert abs(len(split.test) - 30) <= 4


def test_bad_arguments_say_which():
    with pytest.raises(SplitError, match="test_fraction: 1.5"):
        stratified_split(LABELS, 1.5, seed=0)
    with pytest.raises(SplitError, match="both be > 0"):
        ordered_split(10, 0, 5)
    with pytest.raises(SplitError, match="k >= 2"):
        kfold_indices(LABELS, 1, seed=0)
    with pytest.raises(SplitError, match="class 'tulip' has only 2 distinct image.*duplicates are merged"):
        kfold_indices(np.array([0, 0, 0, 1, 1, 1]), 3, seed=0, groups=[0, 1, 2, 3, 3, 4],
                      class_names=["rose", "tulip"])
    with pytest.raises(SplitError, match="share indices"):
        Split(np.array([1, 2]), np.array([2, 3]))


def test_a_one_image_class_is_named_and_not_said_to_have_duplicates():
    with pytest.raises(SplitError, match=r"2-fold CV: class 'tulip' has only 1 image;"):
        kfold_indices(np.array([0, 0, 0, 1]), 2, seed=0, groups=np.arange(4), class_names=["rose", "tulip"])
