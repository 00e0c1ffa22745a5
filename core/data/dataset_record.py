"""The Dataset record (its images, labels, skipped files and the label decisions applied), its content
hash, and `DatasetError`: what the loading (`core.data.datasets`) and the label decisions
(`core.data.decisions`) both build on.

The content hash (`Dataset.fingerprint`) keys every cache downstream (decoded images, backbone
activations), so it must change whenever a file or a label changes, and stay cheap to recompute.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.files import write_json_whole

DIGEST_FILE = "file_digests.json"


class DatasetError(ValueError):
    """The dataset as a whole cannot be used; the message says which file or folder and what to do."""


@dataclass
class Dataset:
    root: str
    classes: list[str]
    paths: list[str]
    labels: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    decisions_version: int = 0      # the label decisions applied (`core.data.decisions`; 0: none)
    decisions_applied: int = 0      # how many of them changed a row (an exclusion or a relabel)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths are taken against: the root folder, or the CSV's folder."""
        root = Path(self.root)
        return root.parent if root.suffix.lower() == ".csv" else root

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts)}

    def fingerprint(self, cache_dir: Path | None = None) -> str:
        """sha256 over (relative path, class name, sha1 of bytes) of every image, in order.

        Per-file sha1s are remembered by (path, size, mtime) under the cache dir, so a second call
        on thousands of files only stats them.
        """
        digests = file_digests(self.paths, cache_dir)
        h = hashlib.sha256()
        base = self.base_dir
        for path, label, digest in zip(self.paths, self.labels, digests):
            h.update(f"{os.path.relpath(path, base)}\0{self.classes[label]}\0{digest}\n".encode())
        return h.hexdigest()

    def subset(self, indices: Iterable[int] | np.ndarray) -> Dataset:
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        return Dataset(self.root, list(self.classes), [self.paths[i] for i in idx], self.labels[idx],
                       list(self.skipped), self.decisions_version, self.decisions_applied)

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "classes": self.classes, "paths": self.paths,
                "labels": self.labels.tolist(), "skipped": [list(s) for s in self.skipped],
                "decisions_version": self.decisions_version, "decisions_applied": self.decisions_applied}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dataset:
        return cls(data["root"], list(data["classes"]), list(data["paths"]), np.asarray(data["labels"]),
                   [tuple(s) for s in data.get("skipped", [])], int(data.get("decisions_version", 0)),
                   int(data.get("decisions_applied", 0)))


def default_cache_dir() -> Path:
    from core.settings import load_settings

    return load_settings().cache_dir


def _sha1_of_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(paths: Sequence[str], cache_dir: Path | None = None) -> list[str]:
    """sha1 of each file's bytes, reusing ones remembered for an unchanged (size, mtime)."""
    store = Path(cache_dir or default_cache_dir()) / DIGEST_FILE
    try:
        known: dict[str, list] = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    digests, changed = [], False
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DatasetError(f"{path}: file is gone ({exc.strerror}); load the dataset again") from exc
        stamp = [st.st_size, st.st_mtime_ns]
        entry = known.get(path)
        if not entry or entry[:2] != stamp:
            entry = known[path] = [*stamp, _sha1_of_file(path)]
            changed = True
        digests.append(entry[2])
    if changed:
        write_json_whole(store, known)
    return digests
