"""Decode and resize every image once per size; trials and activation caches read the uint8 memmap.

Stored as `<cache>/images/<fingerprint>-<size>.u8` plus a JSON sidecar (shape, paths) written
last, each by write-then-rename, so a crashed run never leaves a half file that looks complete.
"""
from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np

from core.data.dataset_record import Dataset, default_cache_dir
from core.data.images import imap_in_processes, load_image
from core.files import write_json_whole, written_whole
from core.progress import Progress


def _decode(size: int, path: str) -> np.ndarray:
    return load_image(path, size)


def _cached(data: Path, meta: Path, shape: tuple[int, ...], paths: list[str]) -> bool:
    """A complete entry for exactly these files: sidecar present and agreeing, data the right size."""
    try:
        info = json.loads(meta.read_text())
        return (tuple(info["shape"]) == shape and info["paths"] == paths
                and data.stat().st_size == int(np.prod(shape)))
    except (OSError, ValueError, KeyError):
        return False


def decoded_images(dataset: Dataset, size: int, cache_dir: Path | None = None,
                   progress: Progress | None = None) -> np.ndarray:
    """uint8 (N, size, size, 3), read-only memmap; decoded on all cores on the first call only.

    A file that fails to decode raises `BadImageError` naming it (load the dataset with
    validate=True to leave such files out beforehand).
    """
    cache = Path(cache_dir or default_cache_dir())
    folder = cache / "images"
    stem = f"{dataset.fingerprint(cache)}-{size}"
    data, meta = folder / f"{stem}.u8", folder / f"{stem}.json"
    shape = (len(dataset), size, size, 3)
    if not _cached(data, meta, shape, dataset.paths):
        with written_whole(data) as temporary:
            out = np.memmap(temporary, dtype=np.uint8, mode="w+", shape=shape)
            for i, pixels in enumerate(imap_in_processes(partial(_decode, size), dataset.paths, progress)):
                out[i] = pixels
            out.flush()
            del out
        write_json_whole(meta, {"shape": shape, "root": dataset.root, "paths": dataset.paths})
    return np.memmap(data, dtype=np.uint8, mode="r", shape=shape)


def cache_info(cache_dir: Path | None = None) -> dict:
    """Decoded-image entries, files and bytes on disk (sidecars included)."""
    folder = Path(cache_dir or default_cache_dir()) / "images"
    files = [f for f in folder.iterdir() if f.is_file()] if folder.is_dir() else []
    return {"entries": sum(f.suffix == ".u8" for f in files), "files": len(files),
            "bytes": sum(f.stat().st_size for f in files), "path": str(folder)}


def clear_cache(cache_dir: Path | None = None) -> int:
    """Delete every decoded-image entry (not other caches under cache_dir); returns the bytes freed."""
    info = cache_info(cache_dir)
    shutil.rmtree(info["path"], ignore_errors=True)
    return info["bytes"]
