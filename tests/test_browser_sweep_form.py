"""The Sweep form in a real browser: it opens on the recommended preset with a time budget, "Plan for this
machine" shows the plan with its estimate, and the augmentation preview shows training images through the
augmentation (issue 20; issue 23, item 12). Screenshots in test-output/ for a person to look at."""
from __future__ import annotations

from pathlib import Path

import pytest
from browser import SHOTS, serve, server_env, settle, shoot
from conftest import COLOURS, make_image
from PIL import ImageDraw
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def write_marked_classes(root: Path, per_class: int) -> None:
    """Colour classes whose images carry a white L in a corner, so a flip, turn, shift or zoom shows."""
    for c, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = make_image(colour, seed=100 * c + i, size=(96, 96))
            ImageDraw.Draw(image).line([(14, 14), (14, 60), (44, 60)], fill="white", width=9)
            image.save(root / name / f"{name}_{i:02d}.png")


def switch_on(page, label: str, tries: int = 3) -> None:
    """Click a toggle's label until its switch reads on: on a loaded CI machine a click landing while the
    page re-rendered was dropped once, and the preview it asks for never came."""
    switch = page.get_by_role("switch", name=label)
    for _ in range(tries):
        page.get_by_text(label).click()
        try:
            expect(switch).to_be_checked(timeout=10_000)
            return
        except AssertionError:
            continue
    expect(switch).to_be_checked(timeout=1)


def test_the_sweep_form_plans_the_preset_and_previews_its_augmentation(tmp_path: Path, chromium) -> None:
    write_marked_classes(tmp_path / "data" / "colours", per_class=12)
    with serve(tmp_path, server_env(tmp_path)) as url:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Sweep")
        settle(page)
        page.get_by_role("button", name="Plan for this machine").wait_for(timeout=60_000)
        shoot(page, "sweep-form-open")
        assert page.get_by_text("Time budget (minutes)").count() == 1
        page.get_by_role("button", name="Plan for this machine").click()
        settle(page, timeout_ms=300_000)
        page.get_by_text("Best model in 15 min").wait_for(timeout=60_000)
        shoot(page, "sweep-form-planned")
        assert page.get_by_role("button", name="Launch").is_enabled()
        page.get_by_text("Augmentation preview").click()
        switch_on(page, "Show training images through the augmentation")
        settle(page, timeout_ms=300_000)
        page.get_by_text("standard, draw 2").first.wait_for(timeout=60_000)
        preview = page.locator('[data-testid="stExpander"]').filter(has_text="Augmentation preview")
        preview.scroll_into_view_if_needed()
        preview.screenshot(path=str(SHOTS / "sweep-augmentation.png"))
        assert preview.locator("img").count() == 15          # 5 images, then 2 draws of each
        page.close()
