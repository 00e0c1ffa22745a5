"""Before / after cleaning: the final models of two sweeps on their common test images, and a trial's
count of suspect training images."""
from __future__ import annotations

import numpy as np
import pytest

from core.quality.suspects import flagged_count
from core.runs.evaluation import Evaluation
from core.results.tables import common_test_table
from core.runs.records import OutOfFold


def test_final_models_compare_on_their_common_test_images_by_the_newer_labels():
    classes = ["cat", "dog"]
    # before: 4 test images, "c" filed as cat; it predicts a, b right and says dog for c and d
    before = Evaluation(classes, [0, 1, 0, 1], [[.9, .1], [.2, .8], [.3, .7], [.4, .6]], paths=list("abcd"))
    # after cleaning: "a" excluded, "c" relabelled dog; it predicts dog for b, c and cat for d
    after = Evaluation(classes, [1, 1, 1], [[.1, .9], [.2, .8], [.7, .3]], paths=list("bcd"))
    table = common_test_table({"before": before, "after": after}).set_index("sweep")
    assert table.loc["before", "own test accuracy"] == pytest.approx(0.75)
    assert table.loc["after", "own test accuracy"] == pytest.approx(2 / 3)
    assert (table["common test images"] == 3).all()
    # judged by the newer labels (b, c, d all dog): before gets b, c, d right; after gets b, c
    assert table.loc["before", "accuracy on the common images"] == pytest.approx(1.0)
    assert table.loc["after", "accuracy on the common images"] == pytest.approx(2 / 3)


def test_common_test_table_refuses_records_without_paths():
    ev = Evaluation(["a", "b"], [0, 1], [[.9, .1], [.1, .9]])
    with pytest.raises(ValueError, match="no image paths"):
        common_test_table({"x": ev, "y": ev})


def test_a_trials_suspect_count_is_cleanlabs_flagged_images():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    scores = np.full((120, 3), 0.05)
    scores[np.arange(120), labels] = 0.9
    wrong = rng.choice(120, size=6, replace=False)
    scores[wrong] = 0.05
    scores[wrong, (labels[wrong] + 1) % 3] = 0.9          # confidently another class: a label issue
    oof = OutOfFold(paths=[f"{i}.jpg" for i in range(120)], labels=labels, classes=["a", "b", "c"],
                    folds=np.zeros(120, dtype=np.int64), scores=scores)
    assert flagged_count(oof) == 6
