"""Open any image a user gives, safely, as RGB pixels; the one decode path for training and prediction.

Every file may be broken (0 bytes, not an image, truncated, a decompression bomb, 1x1) or unusual
(CMYK, 16-bit, palette, alpha, animated, rotated by EXIF). Broken files raise `BadImageError`
naming the file and a short reason; unusual ones come out as plain 8-bit RGB.
"""
from __future__ import annotations

import io
import os
import re
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000
MIN_SIDE = 8
CPUS_VARIABLE = "TRANSFERLAB_CPUS"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

ImageSource = str | Path | bytes | BinaryIO

# What a file that is not an image usually is, by its first bytes: a user who uploaded a PDF
# named .jpg learns that, instead of "cannot identify image file".
_MAGIC = [
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"<svg", "an SVG drawing (convert it to PNG)"),
    (b"<?xml", "an XML file"),
]


class BadImageError(ValueError):
    """A file that cannot be used as an image; `reason` is short enough for a table cell."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # keeps both fields when raised inside a worker process
        return (BadImageError, (self.path, self.reason))


@dataclass(frozen=True)
class ImageInfo:
    """What a header check learns without decoding the pixels."""

    width: int
    height: int
    format: str


def _source_name(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return str(getattr(source, "name", None) or "<uploaded image>")


def _read_head(source: ImageSource, n: int = 32) -> bytes:
    if isinstance(source, bytes):
        return source[:n]
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return f.read(n)
    pos = source.tell()
    head = source.read(n)
    source.seek(pos)
    return head


def _format_by_magic(head: bytes) -> str:
    for magic, fmt in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
                       (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")):
        if head.startswith(magic):
            return fmt
    return "WEBP" if head[8:12] == b"WEBP" else "image"


def _damage(exc: BaseException, fmt: str) -> str:
    """'truncated JPEG' when the file simply ends too early, else 'corrupt PNG (...)'."""
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return f"truncated {fmt}"
    return f"corrupt {fmt} ({exc})"


def _not_an_image(head: bytes) -> str:
    lowered = head.lstrip().lower()
    for magic, what in _MAGIC:
        if lowered.startswith(magic.lower()):
            return f"not an image (looks like {what})"
    if b"ftypheic" in head or b"ftypheix" in head or b"ftypmif1" in head:
        return "HEIC photo, not supported (convert it to JPEG)"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "not an image (looks like a text file)"
    return "not an image (unknown file format)"


def _open_checked(source: ImageSource, name: str) -> Image.Image:
    """Open lazily (header only) and refuse empty, unknown, bomb-sized and tiny images."""
    if isinstance(source, (str, Path)):
        try:
            if os.path.getsize(source) == 0:
                raise BadImageError(name, "0 bytes")
        except OSError as exc:
            raise BadImageError(name, f"cannot read file ({exc.strerror or exc})") from exc
        fp: str | Path | BinaryIO = source
    elif isinstance(source, bytes):
        if not source:
            raise BadImageError(name, "0 bytes")
        fp = io.BytesIO(source)
    else:
        fp = source
        if not _read_head(fp, 1):
            raise BadImageError(name, "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(pixels.group(1)):,} px" if pixels else "too many pixels"
        raise BadImageError(name, f"decompression bomb: {count} exceeds limit of {MAX_PIXELS:,}") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(name, _not_an_image(_read_head(source))) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(name, _damage(exc, _format_by_magic(_read_head(source)))) from exc
    width, height = im.size
    if width * height > MAX_PIXELS:
        im.close()
        raise BadImageError(name, f"decompression bomb: {width}x{height} px exceeds limit of {MAX_PIXELS:,}")
    if min(width, height) < MIN_SIDE:
        im.close()
        raise BadImageError(name, f"too small: {width}x{height} px (need at least {MIN_SIDE} px a side)")
    return im


def _load_pixels(im: Image.Image, name: str) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(name, _damage(exc, im.format or "image")) from exc


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: alpha composited on white, 16/32-bit rescaled rather than clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0 if values.max() <= 65535 else values.max()
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def open_rgb(source: ImageSource, name: str | None = None, *, at_least: int | None = None) -> Image.Image:
    """Fully decoded 8-bit RGB image, EXIF rotation applied, first frame of an animation.

    `at_least` lets JPEGs decode at a reduced DCT scale while both sides stay >= at_least px:
    several times faster on camera photos that are going to be shrunk anyway.
    """
    label = _source_name(source, name)
    im = _open_checked(source, label)
    try:
        if at_least and im.format == "JPEG":
            im.draft("RGB", (at_least, at_least))
        _load_pixels(im, label)
        oriented = ImageOps.exif_transpose(im)
        return _to_rgb(oriented)
    finally:
        im.close()


def probe_image(source: ImageSource, name: str | None = None) -> ImageInfo:
    """Cheap validity check for whole folders: header, size limits, and a truncation check.

    JPEGs are decoded at 1/8 scale (entropy decoding only, so truncation shows); other formats use
    PIL's verify, which checks structure without decoding.
    """
    label = _source_name(source, name)
    im = _open_checked(source, label)
    try:
        info = ImageInfo(im.width, im.height, im.format or "?")
        if im.format == "JPEG":
            im.draft(im.mode, (1, 1))
            _load_pixels(im, label)
        else:
            try:
                im.verify()
            except Exception as exc:  # verify raises assorted types for assorted formats
                raise BadImageError(label, _damage(exc, info.format)) from exc
        return info
    finally:
        im.close()


def load_image(source: ImageSource, size: int) -> np.ndarray:
    """uint8 (size, size, 3) pixels, squashed with bilinear: the same call for training and prediction."""
    im = open_rgb(source, at_least=2 * size)
    resized = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(resized, dtype=np.uint8)


JUNK_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


def is_junk(name: str) -> bool:
    """Operating-system clutter and hidden files (macOS resource forks `._x`): never dataset content."""
    return name in JUNK_NAMES or name.startswith(".")


def is_image_file(path: str | Path) -> bool:
    """An image by name: a known extension and not a hidden or macOS resource-fork file."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


T = TypeVar("T")
R = TypeVar("R")


def usable_cpus() -> int:
    """The CPUs this process may use: TRANSFERLAB_CPUS when a cluster engine gave its task that many
    (os.cpu_count() counts the whole node), else the machine's."""
    given = os.environ.get(CPUS_VARIABLE, "").strip()
    return int(given) if given.isdigit() and int(given) > 0 else os.cpu_count() or 1


def imap_in_processes(
    fn: Callable[[T], R],
    items: Sequence[T],
    progress: Callable[[int, int], None] | None = None,
    *,
    workers: int | None = None,
    chunk: int = 32,
) -> Iterator[R]:
    """`fn(x) for x in items` over all cores, yielded in order as they finish; small jobs stay here.

    Yielding lets a caller write big results (decoded images) straight to disk instead of holding
    them all. `fn` must be a module-level function (or a partial of one).
    """
    workers = workers or usable_cpus()
    total = len(items)
    if workers == 1 or total < 4 * chunk:
        yield from _report(map(fn, items), total, progress)
        return
    context = _safe_context()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        with _main_hidden_from_spawn(context):  # map() starts every worker before it returns
            results = pool.map(fn, items, chunksize=chunk)
        yield from _report(results, total, progress)


def map_in_processes(
    fn: Callable[[T], R],
    items: Sequence[T],
    progress: Callable[[int, int], None] | None = None,
    *,
    workers: int | None = None,
    chunk: int = 32,
) -> list[R]:
    """`[fn(x) for x in items]` over all cores; see `imap_in_processes`."""
    return list(imap_in_processes(fn, items, progress, workers=workers, chunk=chunk))


def _safe_context() -> BaseContext:
    """fork when it is safe (quick start, works from any script); spawn once threads or TensorFlow
    exist in this process (Streamlit's server, a training run), since forking them can deadlock."""
    busy = threading.active_count() > 1 or "tensorflow" in sys.modules
    return get_context("spawn" if busy else "fork")


_MAIN_SWAP = threading.Lock()


@contextmanager
def _main_hidden_from_spawn(context: BaseContext) -> Iterator[None]:
    """Keep spawned workers from re-running this process's `__main__` script.

    A spawned child imports its parent's main script first. Under Streamlit that "script" is the
    running page (Streamlit installs it as `__main__`), so each worker would run the app again:
    resume sweeps, open the store, and die. Workers need only `fn`'s own module, so while they
    start, `__main__` is a bare module with no file to re-run.
    """
    if context.get_start_method() == "fork":
        yield
        return
    with _MAIN_SWAP:
        real = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = real


def _report(results: Iterable[R], total: int, progress: Callable[[int, int], None] | None) -> Iterable[R]:
    step = max(1, total // 100)
    for done, result in enumerate(results, 1):
        if progress and (done % step == 0 or done == total):
            progress(done, total)
        yield result
