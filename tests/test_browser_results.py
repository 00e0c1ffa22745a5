"""In Chromium: the Results page of a finished sweep (records written through the real store, no training):
its summary band on top, and a click inside a cell of the test confusion matrix and of the validation
(out-of-fold) confusion shows that cell's images. Screenshots in test-output/ (3-results-band.png,
3-results-cell-test.png, 3-results-cell-validation.png)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_class_folders
from results_records import CLASSES, OOF_MISTAKES, TEST_MISTAKE, recorded_sweep
from browser import VIEWPORT, serve, server_env, settle, shoot, visit

pytestmark = pytest.mark.slow
COLOURS = {"blue": (40, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40)}

# The pixel position, in the page, of a point 30% of a cell away from the centre of cell (true, predicted) of
# the plotly figure whose title holds `title`: a click in the cell, not on a marker's exact centre.
CELL_AT = """([title, t, p]) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
      .find(g => (g.layout.title?.text || '').includes(title));
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const w = xa._length / xa._categories.length, h = ya._length / ya._categories.length;
  return [box.x + xa._offset + xa.l2p(p) + 0.3 * w, box.y + ya._offset + ya.l2p(t) - 0.3 * h];
}"""


def click_cell(page, title: str, true: int, predicted: int) -> None:
    chart = page.locator('[data-testid="stPlotlyChart"]', has_text=title).first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    x, y = page.evaluate(CELL_AT, [title, true, predicted])
    page.mouse.click(x, y)
    settle(page)


def cell_heading(true: int, predicted: int) -> str:
    return f"True {CLASSES[true]}, predicted {CLASSES[predicted]}"


def test_the_band_on_top_and_both_confusions_click_through_to_their_images(tmp_path: Path, chromium,  # noqa: F811
                                                                           monkeypatch) -> None:
    colours = write_class_folders(tmp_path / "data" / "colours", per_class=10, classes=COLOURS)
    env = server_env(tmp_path)
    for key in ("TRANSFERLAB_HOME", "TRANSFERLAB_STORAGE", "TRANSFERLAB_DATA_ROOTS"):
        monkeypatch.setenv(key, env[key])
    recorded_sweep("clicked", colours)
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, env) as url:
            visit(page, f"{url}/Results?sweep=clicked&results_tab=One+trial", "3-results-band", "Results")
            assert page.get_by_text("Classify new images with it").count() == 1      # the band, above the tabs
            click_cell(page, "Confusion matrix (test)", *TEST_MISTAKE)
            shoot(page, "3-results-cell-test")
            page.get_by_text(cell_heading(*TEST_MISTAKE)).wait_for(timeout=30_000)
            images = page.locator('[data-testid="stImage"]')
            assert images.count() >= 1
            click_cell(page, "Validation confusion", *OOF_MISTAKES[0])
            shoot(page, "3-results-cell-validation")
            page.get_by_text(cell_heading(*OOF_MISTAKES[0])).wait_for(timeout=30_000)
            assert images.count() >= 2
    finally:
        page.close()
