"""The 95% Wilson interval of a test accuracy, on counts whose intervals are published."""
from __future__ import annotations

import pytest

from core.runs.evaluation import wilson_interval


@pytest.mark.parametrize(("correct", "n", "low", "high"), [
    (32, 32, 0.8928, 1.0),        # "100% on 32 images" is at least 89% with 95% confidence
    (300, 340, 0.8438, 0.9124),
    (0, 10, 0.0, 0.2775),
    (27, 32, 0.6825, 0.9314),
])
def test_known_counts(correct: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(correct, n)
    assert interval == pytest.approx((low, high), abs=1e-4)


def test_the_interval_holds_the_observed_share_and_narrows_with_more_images() -> None:
    small, large = wilson_interval(9, 10), wilson_interval(900, 1000)
    assert small[0] < 0.9 < small[1] and large[0] < 0.9 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_no_images_is_an_error() -> None:
    with pytest.raises(ValueError, match="no images"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="between 0 and"):
        wilson_interval(11, 10)


def test_an_evaluation_gives_its_accuracy_with_the_interval_and_count() -> None:
    import numpy as np

    from core.runs.evaluation import Evaluation
    scores = np.array([[0.9, 0.1]] * 32)
    evaluation = Evaluation(["iris", "tulip"], np.zeros(32, int), scores)
    assert evaluation.accuracy_interval() == pytest.approx((0.8928, 1.0), abs=1e-4)
    assert evaluation.accuracy_text() == "100.0% (95% interval 89.3-100.0%, 32 images)"


def test_the_summary_the_store_and_the_cli_json_keep_carries_the_interval() -> None:
    import json

    import numpy as np

    from core.runs.evaluation import Evaluation
    evaluation = Evaluation(["iris", "tulip"], np.zeros(32, int), np.array([[0.9, 0.1]] * 32))
    summary = json.loads(json.dumps(evaluation.summary()))
    assert summary["accuracy_interval"] == pytest.approx([0.8928, 1.0], abs=1e-4) and summary["n"] == 32
