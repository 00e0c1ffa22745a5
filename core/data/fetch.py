"""Download a public example dataset, verify it, and unpack it safely under a data root.

Machines without internet get a message saying which file to fetch by hand and where to unpack it.
`download_verified` is the one download helper (progress, hash, nothing half-written left behind);
the ImageNet weights (core.models.weights) use it too.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from core.data.archives import ArchiveError, extract_tar, find_dataset_root
from core.files import written_whole
from core.progress import Progress


class DownloadError(RuntimeError):
    """A download failed: unreachable, an HTTP error, cut short, or not the file expected (one sentence)."""


class FetchError(RuntimeError):
    """The example could not be fetched; the message says why and what to do by hand."""


@dataclass(frozen=True)
class Example:
    url: str
    sha256: str | None
    size: int | None  # bytes, for progress when the server sends no Content-Length


# Checksum and size as recorded by TensorFlow Datasets for tf_flowers (url_checksums/tf_flowers.txt).
EXAMPLES = {
    "flowers": Example(
        url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
        sha256="4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c",
        size=228_813_984,
    ),
}
_BLOCK = 1 << 16


def hash_algorithm(expected_hash: str) -> str:
    """keras.utils.get_file's "auto" rule: a 64-digit hash is sha256, anything else md5."""
    return "sha256" if len(expected_hash) == 64 else "md5"


def _stream(url: str, into: Path, algorithm: str, timeout: float, expected_size: int | None,
            progress: Progress | None) -> str:
    """Stream `url` to the file `into`; returns its hex digest. Failures become DownloadError."""
    host = urlparse(url).hostname or url
    digest = hashlib.new(algorithm, usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(into, "wb") as out:
            announced = int(response.headers.get("Content-Length") or 0)
            total = announced or expected_size or 0
            done = 0
            for block in iter(lambda: response.read(_BLOCK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url} answered HTTP {exc.code} ({exc.reason}): check the URL.") from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not reach {host} ({reason}): no internet?") from exc
    if announced and done != announced:  # urllib takes a connection closed early for the end of the body
        raise DownloadError(f"{url} stopped after {done} of {announced} bytes.")
    return digest.hexdigest()


def download_verified(url: str, dest: Path, *, expected_hash: str | None = None,
                      expected_size: int | None = None, check: Callable[[Path], None] | None = None,
                      progress: Progress | None = None, timeout: float = 30) -> Path:
    """Download `url` to `dest`, which appears only complete and verified, or not at all.

    The bytes go to a hidden temporary file beside `dest`, which is renamed into place once its
    length, its hash (md5 or sha256, as keras.utils.get_file reads `expected_hash`) and `check`
    (which raises DownloadError for a file that is not what it should be) all pass. `progress` sees
    (bytes done, total bytes; 0 when unknown).
    """
    with written_whole(dest) as part:
        algorithm = hash_algorithm(expected_hash) if expected_hash else "sha256"
        got = _stream(url, part, algorithm, timeout, expected_size, progress)
        if expected_hash and got != expected_hash.lower():
            raise DownloadError(f"checksum mismatch for {url}: expected {algorithm} {expected_hash}, "
                                f"got {got}; the download is corrupt or the file changed upstream "
                                "(deleted it).")
        if check is not None:
            check(part)
    return dest


def fetch_example(name: str, data_root: Path, *, url: str | None = None, sha256: str | None = None,
                  progress: Progress | None = None, timeout: float = 30) -> Path:
    """`data_root/<name>`'s dataset folder, downloaded, checked and unpacked on first use only.

    `url`/`sha256` override the registry (tests, mirrors). Unpacking goes to a hidden staging
    folder renamed into place at the end, so a present folder is always complete.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise FetchError(f"example name {name!r} must be letters, digits, '-' or '_'")
    example = EXAMPLES.get(name)
    if example is None and url is None:
        raise FetchError(f"no example called {name!r}; known: {', '.join(sorted(EXAMPLES))}")
    url = url or example.url
    expected = sha256 or (example.sha256 if example and url == example.url else None)
    size = example.size if example and url == example.url else None
    dest = Path(data_root) / name
    if dest.is_dir() and any(dest.iterdir()):
        return find_dataset_root(dest)

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=dest.parent) as scratch:    # beside dest: renamed
        archive, staging = Path(scratch) / "download", Path(scratch) / "unpacked"
        try:
            download_verified(url, archive, expected_hash=expected, expected_size=size, progress=progress,
                              timeout=timeout)
        except DownloadError as exc:
            raise FetchError(f"{exc} Download {url} by hand and unpack it into {dest.parent}.") from exc
        try:
            extract_tar(archive, staging)
        except ArchiveError as exc:
            raise FetchError(f"{url}: {exc}") from exc
        os.replace(staging, dest)
    return find_dataset_root(dest)
