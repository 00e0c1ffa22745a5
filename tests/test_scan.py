"""The dataset report finds copies, near copies, conflicting labels and bad files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from core.data.datasets import load_dataset
from core.data.scan import duplicate_groups_for, near_pairs, scan_dataset


def scene(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A smooth picture with a bright disc: structure a perceptual hash can see (noise has none)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]] / max(size)
    cx, cy = rng.uniform(0.2, 0.6, 2)
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < 0.03) * 150.0
    pixels = np.stack([x * 200 + disc, y * 200, (1 - x) * 150 + disc / 2], axis=-1)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture
def messy(tiny_dataset: Path) -> Path:
    """tiny_dataset plus an exact copy, a resized scene, a copy under another label, a broken file."""
    red = tiny_dataset / "red"
    shutil.copy(red / "red_000.jpg", red / "copy_of_000.jpg")
    scene(1).save(red / "scene.jpg", quality=90)
    scene(1).resize((160, 120)).save(red / "scene_bigger.png")
    shutil.copy(red / "red_002.jpg", tiny_dataset / "blue" / "actually_red.jpg")
    (tiny_dataset / "green" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    (tiny_dataset / "single").mkdir()
    make_image((250, 250, 0), seed=7).save(tiny_dataset / "single" / "only.png")
    return tiny_dataset


def test_scan_finds_duplicates_conflicts_and_bad_files(messy: Path) -> None:
    report = scan_dataset(messy)
    red = messy / "red"
    assert report.counts == {"blue": 13, "green": 12, "red": 15, "single": 1}
    assert report.bad_files == [(str(messy / "green" / "broken.jpg"), "truncated JPEG")]
    assert [str(red / "copy_of_000.jpg"), str(red / "red_000.jpg")] in report.duplicate_groups
    assert report.near_duplicate_groups == [[str(red / "scene.jpg"), str(red / "scene_bigger.png")]]
    assert report.label_conflicts == [{"kind": "exact", "paths": [str(messy / "blue" / "actually_red.jpg"),
                                                                   str(red / "red_002.jpg")],
                                       "labels": ["blue", "red"]}]
    assert report.single_image_classes == ["single"]
    assert len(report.sizes) == 41
    json.dumps(report.to_dict())
    text = report.format_text()
    assert "label conflicts: 1" in text and "truncated JPEG" in text


def test_the_header_and_the_counts_are_of_readable_images(messy: Path) -> None:
    """Bad files are counted apart: a class of two files, one of them broken, holds a single image."""
    (messy / "pair").mkdir()
    make_image((9, 9, 9), seed=8).save(messy / "pair" / "good.png")
    (messy / "pair" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (messy / "empty").mkdir()
    report = scan_dataset(messy)
    assert report.format_text().splitlines()[0] == f"{messy}: 42 readable images in 5 classes, 3 bad files"
    assert report.counts["green"] == 12 and report.counts["pair"] == 1
    assert sum(report.counts.values()) == len(report.sizes) == 42
    assert report.single_image_classes == ["pair", "single"]


def test_duplicate_groups_for_gives_copies_one_id(messy: Path) -> None:
    ds = load_dataset(messy)
    groups = duplicate_groups_for(ds)
    by_name = {Path(p).name: g for p, g in zip(ds.paths, groups)}
    assert by_name["copy_of_000.jpg"] == by_name["red_000.jpg"]
    assert by_name["scene.jpg"] == by_name["scene_bigger.png"]
    assert by_name["actually_red.jpg"] == by_name["red_002.jpg"]
    assert len(set(groups.tolist())) == len(ds) - 3


@pytest.mark.parametrize("max_distance", [0, 3, 8])
def test_near_pairs_matches_brute_force(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, size=(300, 6)).astype(np.uint64)
    hashes = np.concatenate([base, base ^ np.bitwise_xor.reduce(flips[:, :rng.integers(1, 7)], axis=1)])
    found = {tuple(p) for p in near_pairs(hashes, max_distance).tolist()}
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    expected = {(i, j) for i, j in zip(*np.nonzero(dist <= max_distance)) if i < j}
    assert found == expected


@pytest.mark.slow
def test_flowers5_scan_finds_the_known_label_conflicts(flowers5: Path) -> None:
    report = scan_dataset(flowers5)
    assert sum(report.counts.values()) == 4317 and not report.bad_files
    conflicts = {tuple(sorted(c["labels"])) for c in report.label_conflicts}
    assert len(report.label_conflicts) >= 4 and ("rose", "tulip") in conflicts
    assert len(report.near_duplicate_groups) >= 10
