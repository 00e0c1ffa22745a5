"""The Dataset page finds near-duplicates by content (a mirrored copy the scan's hashes miss), shows them
with their similarity, excludes a group's copies in one click (undone by the decisions' undo), and saves
the groups so every split keeps them together."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest import button, no_errors, page
from conftest import app_data_root
from PIL import Image, ImageOps

from core.data.decisions import Action, DecisionLog


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
    assert any(c.startswith("red/board.png · 0.9") for c in captions(at)), captions(at)
    assert metric(at, "Images") == "26"

    exclude = next(b for b in at.button if b.label.startswith("Exclude the 1 copy, keep "))
    kept = exclude.label.removeprefix("Exclude the 1 copy, keep ").replace("\\", "")
    assert kept in pair
    exclude.click().run()
    no_errors(at)
    [decision] = DecisionLog(colours).latest().decisions           # a label decision on the other board
    assert decision.action == Action.EXCLUDE and decision.path == (pair - {kept}).pop()
    assert metric(at, "Images") == "25"
    assert not any(c.startswith(decision.path) for c in captions(at))     # the group is gone, no second pass
    assert not any(b.label == "Find near-duplicates by content" for b in at.button)

    at.button(key="content-duplicates-undo").click().run()
    no_errors(at)
    assert DecisionLog(colours).latest().decisions == ()
    assert metric(at, "Images") == "26"
    assert any(c.startswith(decision.path) for c in captions(at))         # back, still without a second pass
    keep = next(b for b in at.button if b.label.startswith("Keep these"))
    keep.click().run()
    no_errors(at)
    saved = DecisionLog(colours).latest().groups
    assert any(set(group.paths) == pair for group in saved)        # the two boards, and nothing else with them
    assert any("content group(s) saved" in c.value for c in at.caption)


def captions(at) -> list[str]:
    return [c for image in at.image for c in image.captions]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)
