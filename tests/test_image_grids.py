"""Even grids: every thumbnail is a square of one size, and the Samples tab shows each class as one full
row of columns (one image each), not a wrapped strip whose last photo sits alone at its own height."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest import no_errors, page
from conftest import app_data_root, make_image
from PIL import Image

from ui.widgets import PAD_COLOUR, THUMB_SIDE, per_row, square_tile, thumbnail


def two_colour(size: tuple[int, int]) -> Image.Image:
    """Red, with a green band along the long side's two ends: a crop cuts the bands off, a pad keeps them."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[...] = (220, 30, 30)
    band = max(width, height) // 10
    if width >= height:
        pixels[:, :band], pixels[:, -band:] = (30, 200, 30), (30, 200, 30)
    else:
        pixels[:band], pixels[-band:] = (30, 200, 30), (30, 200, 30)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("size", [(300, 120), (90, 240), (50, 50)])
def test_a_tile_is_a_square_of_one_side_cropped_or_padded(size: tuple[int, int]) -> None:
    image = two_colour(size)
    cropped = np.asarray(square_tile(image, 64, "crop")).astype(int)
    padded = np.asarray(square_tile(image, 64, "pad")).astype(int)
    assert cropped.shape == padded.shape == (64, 64, 3)
    green = (np.abs(cropped - (30, 200, 30)).sum(-1) < 60).mean()
    assert green == 0 if size[0] != size[1] else green > 0       # the crop keeps the centre only
    if size[0] != size[1]:
        assert np.abs(padded[0, 0] - PAD_COLOUR).sum() < 10             # the pad fills the short side
        assert (np.abs(padded - (30, 200, 30)).sum(-1) < 60).any()        # and keeps the whole image


def test_a_thumbnail_of_any_file_is_square(tmp_path: Path) -> None:
    make_image((200, 40, 40), seed=1, size=(90, 30)).save(tmp_path / "wide.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    for name in ("wide.jpg", "broken.jpg", "missing.jpg"):
        for fit in ("crop", "pad"):
            assert thumbnail(str(tmp_path / name), 48, fit).shape == (48, 48, 3), (name, fit)


def test_samples_show_one_full_row_per_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    colours = app_data_root(tmp_path, monkeypatch, per_class=10) / "colours"
    (colours / "grey").mkdir()
    for i in range(3):
        make_image((128, 128, 128), seed=90 + i, size=(60, 20)).save(colours / "grey" / f"grey_{i}.jpg")
    at = page()
    no_errors(at)
    samples = next(t for t in at.tabs if t.label == "Samples")
    rows = [c for c in samples.children.values() if getattr(c, "type", "") == "flex_container"]
    headings = [m.value for m in samples.markdown]
    assert headings == ["**blue** · 10 images", "**green** · 10 images", "**grey** · 3 images",
                        "**red** · 10 images"]
    full = per_row(THUMB_SIDE)
    assert [len(row.children) for row in rows] == [full] * 4             # one row per class, `full` columns
    filled = [sum(len(column.image) for column in row.children.values()) for row in rows]
    assert filled == [full, full, 3, full]                    # all of them filled, bar the small class
    assert all(len(column.image) <= 1 for row in rows for column in row.children.values())
