"""What the AppTest suites share: the app's entry, a page opened through it, and checks on a run."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def page(path: str | None = None, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not at.exception, at.exception
    if path:
        at.switch_page(path).run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def tiny_spec(name: str, dataset: Path):
    from core.spec.sweep import SweepSpec
    return SweepSpec.from_dict({"name": name, "data": {"dataset": str(dataset)}, "folds": 2,
                                "search": {"space": {"batch_size": [8, 16]}}})
