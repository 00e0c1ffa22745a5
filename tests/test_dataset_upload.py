"""The Dataset page's zip upload: a zip that is refused says why in one line and leaves nothing on disk; one
that is extracted is confirmed with its counts, and the uploader starts empty in a closed expander."""
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


def extract(at: AppTest, archive: bytes, name: str = "pets.zip") -> None:
    at.file_uploader[0].upload(name, archive, "application/zip").run()
    next(b for b in at.button if b.label == "Extract").click().run()


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
    extract(at, zipped(entries))
    assert not at.exception, at.exception
    assert len(at.error) == 1 and shown in at.error[0].value.replace("\\", ""), [e.value for e in at.error]
    assert sorted(p.name for p in data_root.iterdir()) == ["colours"]


def test_an_extracted_zip_is_confirmed_and_the_uploader_starts_over(data_root: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["upload_expander"] = True                      # the user opened it
    at.run()
    pets = {f"pets/{kind}/{i}.png": png(i) for kind in ("cats", "dogs", "birds")
            for i in range(6 + (kind == "dogs"))}
    extract(at, zipped(pets), "my pets.zip")
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert [s.value for s in at.success] == [                      # the name escaped as plain text
        "Added the dataset **my\\_pets/pets**: 19 images in 3 classes."]
    assert (data_root / "my_pets" / "pets" / "dogs" / "6.png").is_file()
    assert at.session_state["upload_expander"] is False
    [uploader] = at.file_uploader
    assert uploader.key != "zip_upload-0" and uploader.value is None           # a new, empty uploader
    assert at.text_input[0].value == ""
    at.run()                                                         # the next interaction: said once
    assert not at.success
