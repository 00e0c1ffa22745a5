"""The Dataset page's "Suspect labels" tab on a real sweep's out-of-fold scores: mark, save, undo."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import no_errors, page
from conftest import app_data_root

from core.data.decisions import Action, DecisionLog
from core.runs.store import RunStore
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec

SWEEP = "reviewed"


@pytest.fixture
def reviewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root whose colours dataset has one finished trial (no final model yet)."""
    root = app_data_root(tmp_path, monkeypatch, per_class=10)
    spec = SweepSpec.from_dict({
        "name": SWEEP, "folds": 2, "data": {"dataset": "colours", "test_fraction": 0.2},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32, "epochs": 2,
                   "batch_size": 8, "early_stopping": 0, "reduce_lr": 0}})
    store = RunStore()
    store.create_sweep(spec)
    assert run_worker(store, SWEEP) == 1
    return root / "colours"


def decision_boxes(at) -> list:
    return [s for s in at.selectbox if str(s.key).startswith(f"decide-{SWEEP}-")]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_review_tab_marks_saves_and_undoes_decisions(reviewed: Path) -> None:
    at = page(timeout=120)
    no_errors(at)
    assert metric(at, "Images") == "30"
    boxes = decision_boxes(at)
    assert len(boxes) == 12 and all(b.value == "undecided" for b in boxes)     # the top 12 of 24 train images
    assert any("flagged by cleanlab" in m.value for m in at.markdown)
    first, second = boxes[0], boxes[1]
    first.set_value("exclude")
    relabel = next(o for o in second.options if o.startswith("relabel as "))
    second.set_value(relabel).run()
    no_errors(at)
    next(b for b in at.button if b.label == "Save decisions").click().run()
    no_errors(at)

    saved = DecisionLog(reviewed).latest()
    assert saved.version == 1
    assert sorted(d.action for d in saved.decisions) == sorted([Action.EXCLUDE, Action.RELABEL])
    assert next(d.label for d in saved.decisions if d.action == Action.RELABEL) == relabel.removeprefix("relabel as ")
    assert metric(at, "Images") == "29"                  # the scan applies the new version at once
    boxes = decision_boxes(at)
    assert [boxes[0].value, boxes[1].value] == ["exclude", relabel]      # shown as saved
    assert sum(1 for f in reviewed.rglob("*.jpg")) == 30                  # nothing moved or deleted

    at.button(key="suspects-undo").click().run()
    no_errors(at)
    assert DecisionLog(reviewed).latest().decisions == ()
    assert metric(at, "Images") == "30"
    assert all(b.value == "undecided" for b in decision_boxes(at))


def test_review_tab_asks_for_the_final_model_before_gradcam(reviewed: Path) -> None:
    at = page(timeout=120)
    toggle = next(t for t in at.toggle if str(t.key).startswith(f"decide-{SWEEP}-"))
    toggle.set_value(True).run()
    no_errors(at)
    assert any("needs the sweep's final model" in c.value for c in at.caption)


def test_review_tab_adds_outlier_scores_on_request(reviewed: Path) -> None:
    at = page(timeout=120)
    next(c for c in at.checkbox if c.label == "Outlier scores").check().run()
    no_errors(at)
    cards = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(cards) == 12 and all(" · outlier 0." in c or " · outlier 1." in c for c in cards), cards
