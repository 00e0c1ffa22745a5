"""The Dataset page's zip upload: a zip that is refused says why in one line and leaves nothing on disk."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from conftest import make_image, write_class_folders
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_class_folders(tmp_path / "data" / "colours").parent
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    return root


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image((200, 100, 40), seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(("entries", "shown"), [
    ({f"pets/cats/{i}.png": png(i) for i in range(3)}, "has one class (cats)"),
    ({"pets/cats/0.png": png(0), "pets/dogs/0.png": png(1), "pets/dogs/zeros.bin": bytes(4 << 20)},
     "zip bomb"),
    ({"pets/cats/0.png": png(0), "pets/dogs/more.zip": zipped({"a.png": png(1)})},
     "archive inside the archive"),
])
def test_a_refused_zip_says_why_and_leaves_nothing(data_root: Path, entries: dict[str, bytes],
                                                    shown: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.file_uploader(key="zip_upload").upload("pets.zip", zipped(entries), "application/zip").run()
    next(b for b in at.button if b.label == "Extract").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and shown in at.error[0].value.replace("\\", ""), [e.value for e in at.error]
    assert sorted(p.name for p in data_root.iterdir()) == ["colours"]
