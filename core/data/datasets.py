"""A labelled image dataset found on disk (class folders or a CSV) and checked; where a named dataset lies.

The record itself and its content hash are `core.data.dataset_record`'s; `load_dataset` applies the
dataset's label decisions (`core.data.decisions`) unless asked for the images as found. Two ways to
find a named dataset: `dataset_path_in_roots` (the app's: only inside the data roots) and
`dataset_path_anywhere` (the command line's: an absolute path as given, on the user's own machine).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.data.archives import extract_zip
from core.data.dataset_record import Dataset, DatasetError
from core.data.decisions import decided
from core.data.images import (
    IMAGE_EXTENSIONS,
    BadImageError,
    is_image_file,
    is_junk,
    map_in_processes,
    probe_image,
)
from core.progress import Progress


REFUSED = "outside the data folders; refused"
LEFT_OUT = f"class folder without images ({' '.join(sorted(IMAGE_EXTENSIONS))}); left out"


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
    return decided(dataset) if decisions else dataset


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


def dataset_path_anywhere(name_or_path: str, roots: Sequence[Path]) -> Path:
    """The dataset a command-line user named: an absolute path as given (any folder of their own machine,
    not confined), else a name under the data roots (`dataset_path_in_roots`)."""
    path = Path(name_or_path).expanduser()
    if path.is_absolute():
        return path
    return dataset_path_in_roots(name_or_path, roots)


def dataset_path_in_roots(name_or_path: str, roots: Sequence[Path]) -> Path:
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
