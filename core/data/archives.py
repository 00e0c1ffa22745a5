"""Unpack uploaded or downloaded zip/tar archives without trusting them.

Refused: absolute paths, `..` components, links and device files, more bytes or files than the
limits (declared sizes are checked first, then real bytes are counted while writing, since a zip can
lie about its sizes). Nothing is written outside `target`; on refusal what was written is removed.
"""
from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.data.images import is_image_file, is_junk

MAX_BYTES = 2 * 1024**3
MAX_FILES = 100_000
_BLOCK = 1 << 20


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


class _Writer:
    """Writes entries under one folder, counting files and real bytes against the limits."""

    def __init__(self, target: Path, max_bytes: int, max_files: int) -> None:
        self.target, self.max_bytes, self.max_files = target.resolve(), max_bytes, max_files
        self.bytes = self.files = 0

    def check_declared(self, sizes: list[int]) -> None:
        if len(sizes) > self.max_files:
            raise ArchiveError(f"archive holds {len(sizes):,} files, "
                               f"more than the limit of {self.max_files:,}")
        if sum(sizes) > self.max_bytes:
            raise ArchiveError(f"archive unpacks to {sum(sizes):,} bytes, more than the limit of "
                               f"{self.max_bytes:,} (a zip bomb, or a dataset too big to upload)")

    def _destination(self, parts: tuple[str, ...], name: str) -> Path:
        dest = self.target.joinpath(*parts)
        if not dest.resolve().is_relative_to(self.target):
            raise ArchiveError(f"entry '{name}' would be written outside the folder; refusing the archive")
        return dest

    def folder(self, parts: tuple[str, ...], name: str) -> None:
        self._destination(parts, name).mkdir(parents=True, exist_ok=True)

    def file(self, parts: tuple[str, ...], name: str, stream: BinaryIO) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveError(f"archive holds more than {self.max_files:,} files")
        dest = self._destination(parts, name)
        if dest.exists():
            raise ArchiveError(f"entry '{name}' appears twice in the archive; refusing it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as out:
            for block in iter(lambda: stream.read(_BLOCK), b""):
                self.bytes += len(block)
                if self.bytes > self.max_bytes:
                    raise ArchiveError(f"archive unpacks to more than {self.max_bytes:,} bytes "
                                       f"(at '{name}'); "
                                       "refusing it as a zip bomb")
                out.write(block)


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


def extract_zip(zip_path_or_file: str | Path | BinaryIO, target: Path, *, max_bytes: int = MAX_BYTES,
                max_files: int = MAX_FILES) -> Path:
    """Unpack a zip into the new or empty folder `target`; returns the dataset root inside it."""
    with _fresh_folder(target) as folder:
        writer = _Writer(folder, max_bytes, max_files)
        try:
            with zipfile.ZipFile(zip_path_or_file) as zf:
                entries = list(_zip_entries(zf))
                writer.check_declared([info.file_size for info, _ in entries if not info.is_dir()])
                for info, parts in entries:
                    if info.is_dir():
                        writer.folder(parts, info.filename)
                    else:
                        with zf.open(info) as stream:
                            writer.file(parts, info.filename, stream)
        except zipfile.BadZipFile as exc:
            raise ArchiveError(f"{_name(zip_path_or_file)} is not a readable zip file ({exc})") from exc
        except RuntimeError as exc:  # zipfile's word for encrypted entries
            raise ArchiveError(f"{_name(zip_path_or_file)}: {exc}; upload an unencrypted zip") from exc
    return find_dataset_root(folder)


def extract_tar(tar_path: str | Path, target: Path, *, max_bytes: int = MAX_BYTES,
                max_files: int = MAX_FILES) -> Path:
    """Unpack a tar (.tar, .tgz, .tar.bz2, .tar.xz) in one streaming pass; returns the dataset root.

    Tar sizes are real (no compression per entry), so they are counted as entries stream by.
    """
    with _fresh_folder(target) as folder:
        writer = _Writer(folder, max_bytes, max_files)
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
                    if writer.bytes + member.size > max_bytes:
                        raise ArchiveError(f"archive unpacks to more than {max_bytes:,} bytes "
                                           f"(at '{member.name}')")
                    stream = tf.extractfile(member)
                    assert stream is not None  # regular files always have one
                    writer.file(parts, member.name, stream)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{tar_path} is not a readable tar archive ({exc})") from exc
    return find_dataset_root(folder)


def _name(source: str | Path | BinaryIO) -> str:
    return str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", "uploaded zip"))


def find_dataset_root(folder: Path) -> Path:
    """Step down through single wrapping folders (flower_photos/ in flower_photos.tgz) to the classes."""
    while True:
        children = [p for p in folder.iterdir() if not is_junk(p.name)]
        subfolders = [p for p in children if p.is_dir()]
        if len(subfolders) != 1 or any(is_image_file(p) for p in children):
            return folder
        folder = subfolders[0]
