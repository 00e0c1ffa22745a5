"""Download a public example dataset, verify it, and unpack it safely under a data root.

Machines without internet get a message saying which file to fetch by hand and where to unpack it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from core.data.archives import ArchiveError, extract_tar, find_dataset_root


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


def _download(url: str, into: Path, timeout: float, expected_size: int | None,
              progress: Callable[[int, int], None] | None) -> str:
    """Stream `url` to the file `into`; returns its sha256. Network failures become FetchError."""
    host = urlparse(url).hostname or url
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(into, "wb") as out:
            total = int(response.headers.get("Content-Length") or expected_size or 0)
            done = 0
            for block in iter(lambda: response.read(_BLOCK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url} answered HTTP {exc.code} ({exc.reason}); check the URL") from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"could not reach {host} ({reason}): no internet? Download {url} by hand and "
                         f"unpack it into {into.parent}") from exc
    return digest.hexdigest()


def fetch_example(name: str, data_root: Path, *, url: str | None = None, sha256: str | None = None,
                  progress: Callable[[int, int], None] | None = None, timeout: float = 30) -> Path:
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".download", dir=dest.parent)
    os.close(fd)
    archive = Path(tmp_name)
    staging = dest.parent / f".{name}.partial-{archive.stem.rsplit('.', 1)[-1]}"
    try:
        got = _download(url, archive, timeout, size, progress)
        if expected and got != expected.lower():
            raise FetchError(f"checksum mismatch for {url}: expected sha256 {expected}, got {got}; "
                             "the download is corrupt or the file changed upstream (deleted it; try again)")
        try:
            extract_tar(archive, staging)
        except ArchiveError as exc:
            raise FetchError(f"{url}: {exc}") from exc
        os.replace(staging, dest)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return find_dataset_root(dest)
