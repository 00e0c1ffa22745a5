"""Model files uploaded to the server: kept by content hash, and removed once they are old.

An upload is needed only while someone uses it on the Predict page, which writes it again from the
session's copy when it has gone; so every file in the upload folder last written more than
UPLOAD_MAX_AGE ago is removed (the page prunes each time it runs), and no upload is kept forever.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

from core.files import written_whole

UPLOAD_MAX_AGE = dt.timedelta(hours=24)


def keep_upload(data: bytes, folder: Path, suffix: str) -> Path:
    """`data` as folder/<sha1><suffix> (never a user-given name), written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(data).hexdigest()}{suffix}"
    if not path.exists():
        with written_whole(path) as temporary:
            temporary.write_bytes(data)
    return path


def prune_uploads(folder: Path, max_age: dt.timedelta = UPLOAD_MAX_AGE) -> list[Path]:
    """Remove the files in `folder` last written more than `max_age` ago; returns them."""
    cutoff = time.time() - max_age.total_seconds()
    removed = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:     # another session pruned it first
            continue
    return removed
