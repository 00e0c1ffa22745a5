"""Unpack uploaded or downloaded zip/tar archives without trusting them.

Refused: absolute paths, `..` components, links and device files, archives inside the archive, empty
archives, more bytes or files than the limits, and bombs: content inflating more than MAX_RATIO times
its compressed size, member by member (zip) and for the archive as a whole (weighed against the
archive's real size on disk). Declared sizes are checked first, so a bomb is refused before anything
is written; then the real bytes are counted while writing, since a zip can lie about its sizes.
Nothing is written outside `target`; on refusal (also by the caller's `check`) what was written is
removed.
"""
from __future__ import annotations

import io
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.data.images import is_image_file, is_junk

MAX_BYTES = 2 * 1024**3   # inflated bytes of one archive, counted as they are written
MAX_FILES = 100_000       # files in one archive
MAX_RATIO = 100           # inflated / compressed bytes: photos stay near 1, deflate bombs reach 1000
RATIO_FLOOR = 1 << 20     # up to this many inflated bytes nothing is a bomb (small text compresses well)
NESTED = frozenset({".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar"})  # archives inside
_BLOCK = 1 << 20

Check = Callable[[Path], object]


class ArchiveError(ValueError):
    """The archive is unsafe or unreadable; the message names the entry and the rule it broke."""


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The entry's path parts, None for macOS/Windows junk; ArchiveError if it could escape."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ArchiveError(f"entry '{name}' has an absolute path; refusing the archive")
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"entry '{name}' points outside the folder ('..'); refusing the archive")
    if any(is_junk(p) for p in parts):
        return None
    return parts


@dataclass(frozen=True)
class Limits:
    """What one archive may unpack to; `packed`: its size on disk, which its content may inflate
    `max_ratio` times at most."""

    archive: str
    packed: int
    max_bytes: int = MAX_BYTES
    max_files: int = MAX_FILES
    max_ratio: float = MAX_RATIO

    def check_ratio(self, what: str, inflated: int, packed: int) -> None:
        if inflated > max(RATIO_FLOOR, self.max_ratio * packed):
            raise ArchiveError(f"{what} inflates more than {self.max_ratio:g} times its size "
                               f"({inflated:,} bytes from {packed:,}); refusing the archive as a zip bomb")

    def check_total(self, inflated: int, name: str = "") -> None:
        """The archive's inflated bytes (so far, or declared) against the size and ratio limits."""
        if inflated > self.max_bytes:
            at = f" (at '{name}')" if name else ""
            raise ArchiveError(f"{self.archive} unpacks to more than the limit of {self.max_bytes:,} "
                               f"bytes{at} (a zip bomb, or too big to upload)")
        self.check_ratio(self.archive, inflated, self.packed)

    def check_declared(self, members: list[zipfile.ZipInfo]) -> None:
        """Sizes as the zip declares them: refuses most bombs before a byte is inflated."""
        if len(members) > self.max_files:
            raise ArchiveError(f"{self.archive} holds {len(members):,} files, "
                               f"more than the limit of {self.max_files:,}")
        self.check_total(sum(info.file_size for info in members))
        for info in members:
            self.check_ratio(f"entry '{info.filename}'", info.file_size, min(info.compress_size, self.packed))


class _Writer:
    """Writes entries under one folder, counting files and real bytes against the limits."""

    def __init__(self, target: Path, limits: Limits) -> None:
        self.target, self.limits = target.resolve(), limits
        self.bytes = self.files = 0

    def _destination(self, parts: tuple[str, ...], name: str) -> Path:
        dest = self.target.joinpath(*parts)
        if not dest.resolve().is_relative_to(self.target):
            raise ArchiveError(f"entry '{name}' would be written outside the folder; refusing the archive")
        return dest

    def folder(self, parts: tuple[str, ...], name: str) -> None:
        self._destination(parts, name).mkdir(parents=True, exist_ok=True)

    def file(self, parts: tuple[str, ...], name: str, stream: BinaryIO, packed: int | None = None) -> None:
        """One entry, its real bytes counted as written; `packed`: its compressed size, when known."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise ArchiveError(f"{self.limits.archive} holds more than {self.limits.max_files:,} files")
        if PurePosixPath(parts[-1]).suffix.lower() in NESTED:
            raise ArchiveError(f"entry '{name}' is an archive inside the archive; "
                               "upload one archive of class folders of images")
        dest = self._destination(parts, name)
        if dest.exists():
            raise ArchiveError(f"entry '{name}' appears twice in the archive; refusing it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(dest, "xb") as out:
            for block in iter(lambda: stream.read(_BLOCK), b""):
                self.bytes += len(block)
                written += len(block)
                self.limits.check_total(self.bytes, name)
                if packed is not None:
                    self.limits.check_ratio(f"entry '{name}'", written, packed)
                out.write(block)

    def finish(self) -> None:
        if not self.files:
            raise ArchiveError(f"{self.limits.archive} holds no files; "
                               "upload an archive of class folders of images")


@contextmanager
def _fresh_folder(target: Path) -> Iterator[Path]:
    """A new or empty folder to unpack into; on any failure it is removed (or emptied) again."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise ArchiveError(f"{target} is not empty; extract into a new folder")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    for info in zf.infolist():
        parts = _safe_parts(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"entry '{info.filename}' is a symbolic link; "
                               "links are not allowed in uploads")
        if parts:
            yield info, parts


def _size(source: str | Path | BinaryIO) -> int:
    """Bytes of the archive itself: a path's size on disk, or an open file's length."""
    if isinstance(source, (str, Path)):
        return Path(source).stat().st_size
    here = source.tell()
    size = source.seek(0, io.SEEK_END)
    source.seek(here)
    return size


def check_zip(source: str | Path | BinaryIO, *, name: str | None = None, max_bytes: int = MAX_BYTES,
              max_files: int = MAX_FILES, max_ratio: float = MAX_RATIO) -> list[zipfile.ZipInfo]:
    """The file entries of a zip that something other than `extract_zip` will read (Keras opening a
    .keras file), refused by what they declare before a byte of them is inflated: links, paths leaving
    the folder, too many files, too many bytes, a ratio past `max_ratio` (entry by entry, and the whole
    against the file's size). Python's zipfile never inflates an entry past its declared size (it stops
    and fails the CRC), so a reader using it inflates at most what was checked here. `name`: the
    archive as the messages call it (default: its path)."""
    limits = Limits(name or _name(source), _size(source), max_bytes, max_files, max_ratio)
    with _readable_zip(limits.archive), zipfile.ZipFile(source) as zf:
        for _ in _zip_entries(zf):      # refuses links and escaping paths
            pass
        members = [info for info in zf.infolist() if not info.is_dir()]
    limits.check_declared(members)
    return members


@contextmanager
def _readable_zip(name: str) -> Iterator[None]:
    """zipfile's errors as ArchiveError naming the archive."""
    try:
        yield
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{name} is not a readable zip file ({exc})") from exc
    except RuntimeError as exc:  # zipfile's word for encrypted entries
        raise ArchiveError(f"{name}: {exc}; upload an unencrypted zip") from exc


def extract_zip(zip_path_or_file: str | Path | BinaryIO, target: Path, *, max_bytes: int = MAX_BYTES,
                max_files: int = MAX_FILES, max_ratio: float = MAX_RATIO, check: Check | None = None) -> Path:
    """Unpack a zip into the new or empty folder `target`; returns the dataset root inside it.

    `check(root)` runs before returning; if it raises, the archive is refused like any other.
    """
    limits = Limits(_name(zip_path_or_file), _size(zip_path_or_file), max_bytes, max_files, max_ratio)
    with _fresh_folder(target) as folder:
        writer = _Writer(folder, limits)
        with _readable_zip(limits.archive), zipfile.ZipFile(zip_path_or_file) as zf:
            entries = list(_zip_entries(zf))
            limits.check_declared([info for info, _ in entries if not info.is_dir()])
            for info, parts in entries:
                if info.is_dir():
                    writer.folder(parts, info.filename)
                else:
                    with zf.open(info) as stream:
                        writer.file(parts, info.filename, stream, min(info.compress_size, limits.packed))
        writer.finish()
        return _checked_root(folder, check)


def extract_tar(tar_path: str | Path, target: Path, *, max_bytes: int = MAX_BYTES,
                max_files: int = MAX_FILES, max_ratio: float = MAX_RATIO) -> Path:
    """Unpack a tar (.tar, .tgz, .tar.bz2, .tar.xz) in one streaming pass; returns the dataset root.

    Tar sizes are real (no compression per entry), so they are checked as entries stream by, the
    whole weighed against the archive's size.
    """
    with _fresh_folder(target) as folder:
        limits = Limits(str(tar_path), _size(tar_path), max_bytes, max_files, max_ratio)
        writer = _Writer(folder, limits)
        try:
            with tarfile.open(tar_path, mode="r:*") as tf:
                for member in tf:
                    parts = _safe_parts(member.name)
                    if not (member.isfile() or member.isdir()):
                        kind = "link" if member.issym() or member.islnk() else "special file"
                        raise ArchiveError(f"entry '{member.name}' is a {kind}; "
                                           "only files and folders are allowed")
                    if not parts:
                        continue
                    if member.isdir():
                        writer.folder(parts, member.name)
                        continue
                    limits.check_total(writer.bytes + member.size, member.name)
                    stream = tf.extractfile(member)
                    assert stream is not None  # regular files always have one
                    writer.file(parts, member.name, stream)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{tar_path} is not a readable tar archive ({exc})") from exc
        writer.finish()
        return _checked_root(folder, None)


def _checked_root(folder: Path, check: Check | None) -> Path:
    root = find_dataset_root(folder)
    if check is not None:
        check(root)
    return root


def _name(source: str | Path | BinaryIO) -> str:
    return str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", "uploaded zip"))


def find_dataset_root(folder: Path) -> Path:
    """Step down through single wrapping folders (flower_photos/ in flower_photos.tgz) to the classes.

    A single folder holding images is a class, not a wrapper: a one-class archive stays one class.
    """
    while True:
        children = [p for p in folder.iterdir() if not is_junk(p.name)]
        subfolders = [p for p in children if p.is_dir()]
        if len(subfolders) != 1 or any(is_image_file(p) for p in children) or _holds_images(subfolders[0]):
            return folder
        folder = subfolders[0]


def _holds_images(folder: Path) -> bool:
    return any(is_image_file(p) for p in folder.iterdir() if not is_junk(p.name))
