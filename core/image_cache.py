"""Decode and resize every image once per size; trials and caches read the uint8 memmap.

Stored as `<cache>/images/<fingerprint>-<size>.u8` plus a JSON sidecar written last, so a
crashed run never leaves a half file that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from core.datasets import Dataset, default_cache_dir
from core.images import load_image, map_in_processes

Progress = Callable[[int, int], None]


def _decode(size: int, path: str) -> np.ndarray:
    return load_image(path, size)


def decoded_images(dataset: Dataset, size: int, cache_dir: Path | None = None,
                   progress: Progress | None = None) -> np.ndarray:
    """uint8 (N, size, size, 3), read-only memmap; decoded on all cores on the first call only."""
    folder = Path(cache_dir or default_cache_dir()) / "images"
    stem = f"{dataset.fingerprint()}-{size}"
    data, meta = folder / f"{stem}.u8", folder / f"{stem}.json"
    shape = (len(dataset), size, size, 3)
    if not meta.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stem}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
            for i, pixels in enumerate(map_in_processes(partial(_decode, size), dataset.paths, progress)):
                out[i] = pixels
            out.flush()
            del out
            os.replace(tmp, data)
        finally:
            tmp.unlink(missing_ok=True)
        meta_tmp = meta.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        meta_tmp.write_text(json.dumps({"shape": shape, "root": dataset.root}))
        os.replace(meta_tmp, meta)
    return np.memmap(data, dtype=np.uint8, mode="r", shape=shape)


def cache_info(cache_dir: Path | None = None) -> dict:
    """Decoded-image entries and their bytes on disk."""
    folder = Path(cache_dir or default_cache_dir()) / "images"
    files = list(folder.glob("*.u8")) if folder.exists() else []
    return {"entries": len(files), "bytes": sum(f.stat().st_size for f in files), "path": str(folder)}


def clear_cache(cache_dir: Path | None = None) -> int:
    """Delete every decoded-image entry; returns the bytes freed."""
    info = cache_info(cache_dir)
    shutil.rmtree(info["path"], ignore_errors=True)
    return info["bytes"]
