"""The Dataset page's "Get the example flower dataset" button: the example download (served from
loopback, as in test_fetch.py), unpacked, checked and chosen; offline, one clear line and no traceback."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apptest import button, no_errors, page
from conftest import app_data_root, flower_archive
from loopback import Served, serve_folder, unused_port

from core.data.fetch import EXAMPLES, Example

LABEL = "Get the example flower dataset"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    """A flower_photos-like .tgz on a loopback server: (server, sha256 of the archive)."""
    folder, digest = flower_archive(tmp_path, per_class=4)
    with serve_folder(folder) as server:
        yield server, digest


def test_the_button_downloads_unpacks_and_chooses_the_example(site: tuple[Served, str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server, digest = site
    monkeypatch.setitem(EXAMPLES, "flowers", Example(f"{server.url}/flower_photos.tgz", digest, None))
    root = app_data_root(tmp_path, monkeypatch, per_class=4)
    at = page()
    button(at, LABEL).click().run()
    no_errors(at)
    assert server.requests == ["/flower_photos.tgz"]
    assert at.session_state["dataset"] == str(root / "flowers" / "flower_photos")
    assert next(m.value for m in at.metric if m.label == "Images") == "12"


def test_offline_the_button_says_what_to_do_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{unused_port()}/flower_photos.tgz"
    monkeypatch.setitem(EXAMPLES, "flowers", Example(url, "0" * 64, None))
    root = app_data_root(tmp_path, monkeypatch, per_class=4)
    at = page()
    button(at, LABEL).click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    message = at.error[0].value
    assert "could not reach 127.0.0.1" in message and "by hand" in message and "Traceback" not in message
    assert sorted(p.name for p in root.iterdir()) == ["colours"]          # nothing half-written left
