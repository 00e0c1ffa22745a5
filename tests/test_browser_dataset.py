"""In Chromium, as a newcomer: upload a zip of flower photos on the Dataset page, see it confirmed with the
uploader emptied and its expander closed, then the Samples tab as even rows of square thumbnails.
Screenshots in test-output/ (1-dataset-upload-*.png, 1-dataset-samples-even.png)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from browser import VIEWPORT, serve, server_env, settle, shoot, visit

from ui.widgets import THUMB_SIDE, per_row

pytestmark = pytest.mark.slow
PHOTOS_PER_CLASS = 10


def flower_zip(flowers5: Path, target: Path) -> Path:
    """A zip of the first photos of four flowers5 classes (landscape and portrait, of several sizes)."""
    with zipfile.ZipFile(target, "w") as archive:
        for kind in ("daisy", "dandelion", "rose", "tulip"):
            for photo in sorted((flowers5 / kind).glob("*.jpg"))[:PHOTOS_PER_CLASS]:
                archive.write(photo, f"flowers/{kind}/{photo.name}")
    return target


def test_an_uploaded_zip_is_confirmed_and_its_samples_are_even_rows(tmp_path: Path, chromium,  # noqa: F811
                                                                     flowers5: Path) -> None:
    (tmp_path / "data").mkdir()
    archive = flower_zip(flowers5, tmp_path / "my flowers.zip")
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, server_env(tmp_path)) as url:
            visit(page, url, "1-dataset-upload-empty", "Dataset")
            page.get_by_text("Add a dataset: upload a zip of class folders").click()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(archive))
            page.get_by_text("my flowers.zip").wait_for(timeout=30_000)
            settle(page)
            shoot(page, "1-dataset-upload-chosen")
            page.get_by_role("button", name="Extract").click()
            page.get_by_role("tab", name="Samples").wait_for(timeout=120_000)
            settle(page)
            shoot(page, "1-dataset-upload-done")
            confirmed = page.get_by_text("Added the dataset my_flowers/flowers: 40 images in 4 classes.").count()
            still_there = page.get_by_text("my flowers.zip").count()
            expander_open = page.locator('[data-testid="stExpander"] details').first.get_attribute("open")
            page.get_by_role("tab", name="Samples").click()
            panel = page.get_by_role("tabpanel", name="Samples")
            panel.get_by_text("tulip").first.wait_for(timeout=60_000)
            settle(page)
            shoot(page, "1-dataset-samples-even")
            boxes = [panel.locator('[data-testid="stImage"] img').nth(i).bounding_box()
                     for i in range(panel.locator('[data-testid="stImage"] img').count())]
    finally:
        page.close()
    assert confirmed == 1 and still_there == 0 and expander_open is None
    rows: dict[int, list[dict]] = {}
    for box in boxes:
        rows.setdefault(round(box["y"]), []).append(box)
    assert [len(row) for row in rows.values()] == [per_row(THUMB_SIDE)] * 4      # one full row per class
    [(width, height)] = {(round(b["width"]), round(b["height"])) for b in boxes}       # one size for all
    assert width == height > 64                                                            # a square
