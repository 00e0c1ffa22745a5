"""In Chromium: the Dataset page's Suspect labels tab after a real sweep: mark an image, save the
decision, see the dataset shrink, undo it. Screenshots in test-output/ (7-review-*.png)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_class_folders
from browser import VIEWPORT, cli_sweep, serve, server_env, settle, shoot, visit

from core.data.decisions import Action, DecisionLog

pytestmark = pytest.mark.slow
SPEC = """
name: reviewed
data: {dataset: colours, test_fraction: 0.2}
params: {backbone: mobilenetv2, weights: none, image_size: 32, epochs: 2, batch_size: 8}
folds: 2
"""


def test_review_tab_marks_saves_and_undoes_in_a_browser(tmp_path: Path, chromium, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path))       # read the decisions where the server keeps them
    colours = write_class_folders(tmp_path / "data" / "colours", per_class=10)
    env = server_env(tmp_path)
    cli_sweep(tmp_path, env, SPEC)
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, env) as url:
            visit(page, url, "7-review-dataset", "Dataset")
            page.get_by_role("tab", name="Suspect labels").click()
            panel = page.get_by_role("tabpanel", name="Suspect labels")
            panel.get_by_text("flagged by cleanlab").wait_for(timeout=60_000)
            settle(page)
            shoot(page, "7-review-tab")
            boxes = panel.locator('[data-testid="stSelectbox"]')      # the sweep, then one per image
            assert boxes.count() == 1 + 12
            boxes.nth(1).click()
            page.get_by_role("option", name="exclude", exact=True).click()
            settle(page)
            shoot(page, "7-review-marked")
            panel.get_by_role("button", name="Save decisions").click()
            panel.get_by_text("decisions version 1:").wait_for(timeout=60_000)
            settle(page)
            shoot(page, "7-review-saved")
            saved = DecisionLog(colours).latest().decisions
            assert [d.action for d in saved] == [Action.EXCLUDE]
            assert page.get_by_text("29", exact=True).count() >= 1         # the Images metric: one left out
            panel.get_by_role("button", name="Undo the last save").click()
            panel.get_by_text("decisions version 2:").wait_for(timeout=60_000)
            settle(page)
            assert DecisionLog(colours).latest().decisions == ()
            assert page.get_by_text("30", exact=True).count() >= 1
            assert sum(1 for _ in colours.rglob("*.jpg")) == 30               # no file moved or deleted
    finally:
        page.close()
