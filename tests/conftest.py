"""Shared fixtures: tiny generated image datasets and the real flowers5 folder when present, one trial's data
on them, a run store of one test's own, Chromium and a throwaway PostgreSQL (from the helper modules
`browser` and `postgres`, which the test modules share instead of importing each other)."""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import chromium  # noqa: F401  (a fixture: headless Chromium, module-wide)
from PIL import Image
from postgres import postgres_url  # noqa: F401  (a fixture: a throwaway PostgreSQL cluster)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Runs, caches and converted weights of the test session live in one temporary home, never in
# the checkout; one session shares it, so the Lite0 conversion happens once.
os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="transferlab-tests-")
os.environ.pop("TRANSFERLAB_STORAGE", None)
os.environ.pop("TRANSFERLAB_CACHE", None)
os.environ["TRANSFERLAB_WEIGHTS_DOWNLOAD"] = "off"  # never the internet (test_weights.py: a loopback mirror)

FLOWERS5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers5"
COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def make_image(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """A noisy image of one dominant colour: distinct per class, different per seed."""
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.float32)
    pixels = base + rng.normal(0, 25, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_class_folders(root: Path, per_class: int = 12, classes: dict | None = None) -> Path:
    classes = classes or COLOURS
    for c_index, (name, colour) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(colour, seed=c_index * 1000 + i).save(folder / f"{name}_{i:03d}.jpg", quality=90)
    return root


def png_zip(classes: dict[str, tuple[int, int, int]], per_class: int, folder: str = "") -> bytes:
    """A zip of class folders (under `folder`, when given) of `per_class` PNGs each, as a user uploads one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, colour in classes.items():
            for i in range(per_class):
                image = io.BytesIO()
                make_image(colour, seed=i).save(image, format="PNG")
                archive.writestr(f"{folder}{name}/{i}.png", image.getvalue())
    return buffer.getvalue()


def app_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_class: int) -> Path:
    """A data root holding the colours dataset and a run store of this test alone, for the app
    (AppTest runs in-process) and a CLI it starts alike."""
    root = tmp_path / "data"
    write_class_folders(root / "colours", per_class=per_class)
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    return root


def flower_archive(tmp_path: Path, per_class: int) -> tuple[Path, str]:
    """A flower_photos-like .tgz (class folders of generated images) in tmp_path/site: (its folder, sha256)."""
    import hashlib
    import tarfile
    site = tmp_path / "site"
    site.mkdir()
    photos = write_class_folders(tmp_path / "src", per_class=per_class)
    with tarfile.open(site / "flower_photos.tgz", "w:gz") as archive:
        archive.add(photos, arcname="flower_photos")
    return site, hashlib.sha256((site / "flower_photos.tgz").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data root holding the tiny colours dataset, and a run store of this module's own (AppTest
    runs the app in-process, so the environment is its settings)."""
    root = tmp_path_factory.mktemp("data")
    write_class_folders(root / "colours")
    saved = {k: os.environ.get(k) for k in ("TRANSFERLAB_DATA_ROOTS", "TRANSFERLAB_STORAGE")}
    os.environ["TRANSFERLAB_DATA_ROOTS"] = str(root)
    os.environ["TRANSFERLAB_STORAGE"] = f"sqlite:///{tmp_path_factory.mktemp('runs') / 'app.db'}"
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Three colour classes x 12 small JPEGs: learnable in a few steps by a tiny model."""
    return write_class_folders(tmp_path / "colours")


@pytest.fixture(scope="session")
def flowers5() -> Path:
    if not FLOWERS5.is_dir():
        pytest.skip(f"real-data test: {FLOWERS5} is missing (the shared flowers5 photos are not on this machine)")
    return FLOWERS5


@pytest.fixture
def trial_data(tiny_dataset: Path):
    """The tiny colours as one trial's data (`trials.tiny_trial_data`): two interleaved folds."""
    from trials import tiny_trial_data
    return tiny_trial_data(tiny_dataset)


@pytest.fixture
def own_store(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run store of this test alone (the app caches one store per URL), so its sweeps stay here."""
    from core.runs.store import RunStore
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'own.db'}")
    return RunStore()
