"""A labelled image dataset: found on disk (class folders or a CSV), checked, and content-hashed.

The content hash (`Dataset.fingerprint`) keys every cache downstream (decoded images, backbone
activations), so it must change whenever a file or a label changes, and stay cheap to recompute.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.data.archives import extract_zip
from core.data.images import (
    IMAGE_EXTENSIONS,
    BadImageError,
    is_image_file,
    is_junk,
    map_in_processes,
    probe_image,
)

Progress = Callable[[int, int], None]

DIGEST_FILE = "file_digests.json"
REFUSED = "outside the data folders; refused"
LEFT_OUT = f"class folder without images ({' '.join(sorted(IMAGE_EXTENSIONS))}); left out"


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write tmp then rename: a reader never sees half a file, even after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        write_json_atomic(store, known)
    return digests


def _inside(path: str | Path, roots: Sequence[Path]) -> bool:
    return any(Path(path).is_relative_to(r) for r in roots)


def _confined(path: Path, roots: Sequence[Path] | None) -> str | None:
    """`path` with links resolved, or None if it leaves the `roots` (None: no confinement).

    The spelling is judged first, so a path named outside is refused without touching it.
    """
    if roots is not None and not _inside(os.path.normpath(path), roots):
        return None
    real = path.resolve()
    return str(real) if roots is None or _inside(real, roots) else None


def _entries_from_folder(root: Path, roots: Sequence[Path] | None
                         ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Refused links are named by their own path, and judged before anything reads their target."""
    children = {p: _confined(p, roots) for p in sorted(root.iterdir()) if not is_junk(p.name)}
    skipped = [(str(p), REFUSED) for p, real in children.items() if real is None]
    folders = [p for p, real in children.items() if real is not None and p.is_dir()]
    if not folders:
        loose = any(is_image_file(p) for p in root.iterdir())
        hint = "images lie directly in it; " if loose else ""
        raise DatasetError(f"{root}: no class folders ({hint}put each class's images in its own subfolder)")
    entries: list[tuple[str, str]] = []
    for folder in folders:
        found = {p: _confined(p, roots) for p in sorted(folder.rglob("*"))
                 if not any(is_junk(part) for part in p.relative_to(folder).parts)}
        skipped += [(str(p), REFUSED) for p, real in found.items() if real is None]
        files = {p: real for p, real in found.items() if real is not None and p.is_file()}
        images = [p for p in files if is_image_file(p)]
        if not images:
            skipped.append((str(folder), LEFT_OUT))
        entries += [(files[p], folder.name) for p in images]
        skipped += [(real, f"not an image file ({p.suffix or 'no extension'})")
                    for p, real in files.items() if not is_image_file(p)]
    return entries, skipped


def _entries_from_csv(csv_path: Path, roots: Sequence[Path] | None
                      ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A refused row is named by its place in the CSV, never by the path it gives."""
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise DatasetError(f"{csv_path}: missing column(s) {', '.join(missing)} (found: "
                               f"{', '.join(columns) or 'nothing'}); "
                               "the first row must name columns path,label")
        reader.fieldnames = columns
        entries: list[tuple[str, str]] = []
        skipped: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        for row_no, row in enumerate(reader, start=2):
            rel, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            where = f"{csv_path}:{row_no}"
            if not rel or not label:
                skipped.append((where, "empty path or label"))
                continue
            path = _confined(base / rel, roots)
            if path is None:
                skipped.append((where, REFUSED))
            elif path in seen:
                skipped.append((where, f"{rel} listed again (first on row {seen[path]})"))
            elif not os.path.isfile(path):
                skipped.append((path, f"file not found (row {row_no})"))
            elif not is_image_file(path):
                skipped.append((path, f"not an image file ({Path(path).suffix or 'no extension'})"))
            else:
                seen[path] = row_no
                entries.append((path, label))
    return entries, skipped


def _probe_reason(path: str) -> str | None:
    try:
        probe_image(path)
    except BadImageError as exc:
        return exc.reason
    return None


def _validate(entries: list[tuple[str, str]], progress: Progress | None
              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    reasons = map_in_processes(_probe_reason, [p for p, _ in entries], progress, chunk=64)
    good = [e for e, r in zip(entries, reasons) if r is None]
    bad = [(e[0], r) for e, r in zip(entries, reasons) if r is not None]
    return good, bad


def _build(root: Path, entries: list[tuple[str, str]], found: list[tuple[str, str]],
           skipped: list[tuple[str, str]]) -> Dataset:
    classes = sorted({label for _, label in found})
    usable = {label for _, label in entries}
    for name in classes:
        if name not in usable:
            paths = {p for p, label in found if label == name}
            reason = next((f"{p}: {r}" for p, r in skipped if p in paths), "?")
            raise DatasetError(f"{root}: class '{name}' has no readable image (e.g. {reason}); "
                               "fix or replace its files")
    if len(classes) < 2:
        left_out = [Path(p).name for p, reason in skipped if reason == LEFT_OUT]
        also = f" (left out, without images: {', '.join(left_out)})" if left_out else ""
        has = f"has one class ({classes[0]})" if classes else "has no class with images"
        raise DatasetError(f"{root}: {has}{also}; a classifier needs at least 2: "
                           "put each class's images in its own folder")
    index = {name: i for i, name in enumerate(classes)}
    base = root.parent if root.is_file() else root
    entries = sorted(entries, key=lambda e: (e[1], os.path.relpath(e[0], base)))
    return Dataset(str(root), classes, [p for p, _ in entries],
                   np.array([index[label] for _, label in entries], dtype=np.int64), sorted(skipped))


def load_dataset(source: str | Path, *, validate: bool = True, progress: Progress | None = None,
                 roots: Sequence[Path] | None = None, decisions: bool = True) -> Dataset:
    """Find the images and labels of a class-folder tree or a path,label CSV.

    With `decisions`, the dataset's latest label decisions are applied in memory (`core.data.decisions`:
    excluded images left out, relabelled ones moved); without, it is the dataset as found on disk.

    With `validate`, every image's header is checked (and JPEGs for truncation); unreadable files go
    to `skipped` with a reason instead of failing training later.

    A dataset inside the data roots (`roots`, default: the settings') reads only files inside them: rows
    and links pointing elsewhere go to `skipped` with one reason whatever they point at, so the app can
    neither show a file outside nor tell whether one exists. A dataset elsewhere (a command-line user's
    own folder) is not confined.
    """
    if roots is None:
        from core.settings import load_settings

        roots = load_settings().data_roots
    real_roots = [Path(r).expanduser().resolve() for r in roots]
    named = Path(os.path.abspath(Path(source).expanduser()))
    root = named.resolve()
    confined = _inside(root, real_roots)
    if _inside(named, real_roots) and not confined:
        raise DatasetError(f"{named}: {REFUSED}; put the dataset itself inside a data folder")
    limit = real_roots if confined else None
    if not root.exists():
        raise DatasetError(f"{root}: no such folder or CSV file; "
                           "check the name or put the dataset under a data root")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: a dataset is a folder of class folders "
                               "or a CSV with columns path,label")
        found, skipped = _entries_from_csv(root, limit)
    else:
        found, skipped = _entries_from_folder(root, limit)
    entries = found
    if validate:
        entries, bad = _validate(found, progress)
        skipped = skipped + bad
    dataset = _build(root, entries, found, skipped)
    if not decisions:
        return dataset
    from core.data.decisions import decided

    return decided(dataset)


def unpack_dataset(archive: str | Path | BinaryIO, target: Path, *,
                   roots: Sequence[Path] | None = None) -> Path:
    """Unpack an uploaded zip into the new folder `target`; its dataset root, as `list_datasets` finds it.

    A zip that is no dataset (no class folders, one class, ...) is refused like an unsafe one: nothing
    of it stays on disk.
    """
    def check(root: Path) -> None:
        load_dataset(root, validate=False, roots=roots)
        if root.resolve() not in list_datasets([target]):
            raise DatasetError(f"{root}: the class folders hold their images in subfolders; "
                               "put each class's images directly in its folder")

    return extract_zip(archive, target, check=check).resolve()


def resolve_dataset_path(name_or_path: str, roots: Sequence[Path]) -> Path:
    """The dataset a user named, only if it lies inside a configured data root (symlinks resolved).

    The UI must never let free text reach an arbitrary folder on the server.
    """
    text = name_or_path.strip()
    if not text:
        raise DatasetError("no dataset named: choose one of the datasets under the data folders")
    real_roots = [Path(r).expanduser().resolve() for r in roots]
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [r / given for r in real_roots]
    inside = [c.resolve() for c in candidates if any(c.resolve().is_relative_to(r) for r in real_roots)]
    where = ", ".join(map(str, real_roots))
    if not inside:
        raise DatasetError(f"'{text}' is outside the data folders ({where}); "
                           "put the dataset inside one of them")
    for path in inside:
        if path.exists():
            return path
    raise DatasetError(f"no dataset '{text}' in the data folders ({where})")


def _has_images(folder: Path) -> bool:
    try:
        return any(is_image_file(p) for p in folder.iterdir() if p.is_file())
    except OSError:
        return False


def _looks_like_csv_dataset(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = [c.strip().lower() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return False
    return "path" in header and "label" in header


def list_datasets(roots: Sequence[Path], max_depth: int = 3) -> list[Path]:
    """Folders (>= 2 subfolders holding images) and path,label CSVs under the data roots."""
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if not is_junk(p.name))
        except OSError:
            return
        subfolders = [p for p in children if p.is_dir()]
        if sum(1 for p in subfolders if _has_images(p)) >= 2:
            found.append(folder)
            return
        found.extend(p for p in children if p.suffix.lower() == ".csv" and _looks_like_csv_dataset(p))
        if depth < max_depth:
            for sub in subfolders:
                walk(sub, depth + 1)

    for root in roots:
        if Path(root).is_dir():
            walk(Path(root).resolve(), 0)
    return sorted(found)
