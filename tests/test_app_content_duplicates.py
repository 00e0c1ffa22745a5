"""The Dataset page finds near-duplicates by content (a mirrored copy the scan's hashes miss), shows them
with their similarity, and saves them so every split keeps them together."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest import button, no_errors, page
from conftest import app_data_root
from PIL import Image, ImageOps

from core.data.decisions import DecisionLog


def checkerboard(size: int = 96, square: int = 12) -> Image.Image:
    rows, cols = np.indices((size, size)) // square
    pattern = ((rows + cols) % 2 * 200 + 30).astype(np.uint8)
    return Image.fromarray(np.stack([pattern, pattern // 2, 255 - pattern], axis=-1))


def test_a_mirrored_copy_is_found_shown_and_kept_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = app_data_root(tmp_path, monkeypatch, per_class=8)
    colours = root / "colours"
    checkerboard().save(colours / "red" / "board.png")
    ImageOps.mirror(checkerboard()).save(colours / "blue" / "board_mirrored.png")   # filed elsewhere, too
    at = page(timeout=240)
    no_errors(at)
    button(at, "Find near-duplicates by content").click().run()
    no_errors(at)
    pair = {"red/board.png", "blue/board_mirrored.png"}
    captions = [c for image in at.image for c in image.captions]
    assert any(c.startswith("red/board.png · 0.9") for c in captions), captions
    keep = next(b for b in at.button if b.label.startswith("Keep these"))
    keep.click().run()
    no_errors(at)
    saved = DecisionLog(colours).latest().groups
    assert any(set(group.paths) == pair for group in saved)        # the two boards, and nothing else with them
    assert any("content group(s) saved" in c.value for c in at.caption)
