"""Example download over a loopback server: progress, checksum, offline and timeout paths. No internet."""
from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import flower_archive
from loopback import serve_folder, unused_port

from core.data.fetch import EXAMPLES, DownloadError, FetchError, download_verified, fetch_example


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, sha256) of a tiny flower_photos-like .tgz served from 127.0.0.1."""
    site, digest = flower_archive(tmp_path, per_class=2)
    with serve_folder(site) as server:
        yield f"{server.url}/flower_photos.tgz", digest


def test_fetch_downloads_verifies_and_unpacks_once(served: tuple[str, str], tmp_path: Path) -> None:
    url, digest = served
    calls: list[tuple[int, int]] = []
    folder = fetch_example("flowers", tmp_path / "data", url=url, sha256=digest,
                           progress=lambda done, total: calls.append((done, total)))
    assert folder == tmp_path / "data" / "flowers" / "flower_photos"
    assert sorted(p.name for p in folder.iterdir()) == ["blue", "green", "red"]
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["flowers"]  # no temp files left
    again = fetch_example("flowers", tmp_path / "data", url="http://127.0.0.1:9/never-asked")
    assert again == folder


def test_checksum_mismatch_removes_the_download(served: tuple[str, str], tmp_path: Path) -> None:
    url, _ = served
    with pytest.raises(FetchError, match="checksum mismatch .* expected sha256 0+, got"):
        fetch_example("flowers", tmp_path / "data", url=url, sha256="0" * 64)
    assert list((tmp_path / "data").iterdir()) == []


def test_unreachable_server_says_what_to_do_by_hand(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}/flower_photos.tgz"
    with pytest.raises(FetchError, match=f"could not reach 127.0.0.1.*no internet\\? Download {url} by hand"):
        fetch_example("flowers", tmp_path / "data", url=url, timeout=2)
    assert list((tmp_path / "data").iterdir()) == []


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection but never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.tgz"
        with pytest.raises(FetchError, match="could not reach 127.0.0.1 .*timed out"):
            fetch_example("slow", tmp_path / "data", url=url, timeout=0.5)


def test_http_error_and_unknown_names(served: tuple[str, str], tmp_path: Path) -> None:
    url, _ = served
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_example("flowers", tmp_path / "data", url=url.replace("photos.tgz", "missing.tgz"))
    with pytest.raises(FetchError, match="no example called 'cats'; known: flowers"):
        fetch_example("cats", tmp_path / "data")
    with pytest.raises(FetchError, match="must be letters"):
        fetch_example("../up", tmp_path / "data", url=url)


def test_registry_holds_the_published_checksum() -> None:
    flowers = EXAMPLES["flowers"]
    assert flowers.url.endswith("/flower_photos.tgz") and flowers.size == 228_813_984
    assert flowers.sha256 and len(flowers.sha256) == 64


class CutShort(BaseHTTPRequestHandler):
    """Promises 100 bytes, sends 10, hangs up: urllib reads that as a normal end of the body."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_download_cut_short_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutShort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match="stopped after 10 of 100 bytes"):
            download_verified(f"http://127.0.0.1:{server.server_address[1]}/x.bin", tmp_path / "x.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_download_verified_checks_the_hash_keras_style(served: tuple[str, str], tmp_path: Path,
                                                       algorithm: str) -> None:
    """Like keras.utils.get_file: a 64-digit hash is sha256, a shorter one md5."""
    url, _ = served
    body = (tmp_path / "site" / "flower_photos.tgz").read_bytes()
    dest = tmp_path / "got" / "photos.tgz"
    assert download_verified(url, dest, expected_hash=hashlib.new(algorithm, body).hexdigest()) == dest
    assert dest.read_bytes() == body
