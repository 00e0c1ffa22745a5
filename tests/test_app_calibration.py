"""The Results page's evaluation block: the accuracy with its interval and image count, and the reliability
diagram with the ECE before and after temperature scaling fitted on the out-of-fold scores."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _block() -> None:
    """32 test images all right, and out-of-fold scores that are overconfident: what the block shows."""
    import numpy as np

    from core.runs.evaluation import Evaluation
    from core.runs.records import OutOfFold
    from ui.evaluation import calibration_view, headline
    rng = np.random.default_rng(0)
    test = Evaluation(["iris", "tulip"], np.zeros(32, int), np.array([[0.97, 0.03]] * 32))
    labels = rng.integers(0, 2, 400)
    sure = np.where(rng.random(400) < 0.8, labels, 1 - labels)          # 80% right, always 99% sure
    scores = np.where(np.eye(2)[sure] > 0, 0.99, 0.01)
    oof = OutOfFold(paths=[f"{i}.jpg" for i in range(400)], labels=labels, classes=["iris", "tulip"],
                    folds=np.arange(400) % 2, scores=scores)
    headline(test, "test")
    calibration_view(test, oof, "test", "k")
    calibration_view(test, None, "test", "none")


def test_accuracy_comes_with_its_interval_and_calibration_with_its_diagram() -> None:
    at = AppTest.from_function(_block, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any(m.label == "Accuracy" and m.value == "100.0%" for m in at.metric)
    captions = [c.value for c in at.caption]
    assert any("95% interval 89.3-100.0%, 32 images" in c for c in captions), captions
    assert any("ECE" in c and "temperature" in c for c in captions), captions
    assert any("no out-of-fold scores" in c for c in captions), captions
    assert len(at.get("plotly_chart")) == 1


def _summary_line() -> None:
    import numpy as np

    from core.runs.evaluation import Evaluation
    from core.runs.records import FinalModel
    from ui.evaluation import final_headline
    test = Evaluation(["iris", "tulip"], np.zeros(32, int), np.array([[0.97, 0.03]] * 32)).to_json()
    final_headline(FinalModel(trial=3, cv_error=0.054, params={}, epochs=0, model_path="m.keras", test=test,
                              train=test, test_accuracy=1.0, created="now",
                              why="trial 4 (svm) had the lowest CV error, within the noise"), "*flowers*")


def test_the_final_models_accuracy_sits_beside_the_cross_validated_estimate() -> None:
    at = AppTest.from_function(_summary_line, default_timeout=60).run()
    assert not at.exception, at.exception
    line = at.caption[0].value
    assert "100.0% (95% interval 89.3-100.0%, 32 images)" in line and "cross-validated error 0.054" in line
    assert "\\*flowers\\*" in line          # the sweep's name is text, not Markdown
    assert at.caption[1].value.startswith("Why trial 3: trial 4 \\(svm\\) had the lowest CV error")
