"""A file that appears whole or not at all: written under a temporary name beside its place, then renamed onto
it, so a reader, a second process writing the same file or a crash midway never leaves half of it there."""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def written_whole(path: Path, *, mode: int = 0o600, keep_existing: bool = False) -> Iterator[Path]:
    """A new, empty temporary file beside `path` (its folder made if needed) for the block to write; renamed
    onto `path` when the block ends without an error, removed in any case.

    `mode`: the file's permissions less the umask (0o600, as `tempfile.mkstemp` makes it; 0o666 for those
    `open` gives). `keep_existing`: never replace a file at `path` but raise FileExistsError, so of two
    writers of one name each keeps what it wrote (the loser writes under another name).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_file(path, mode)
    try:
        yield temporary
        if keep_existing:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_whole(path: Path, data: Any, **dump: Any) -> None:
    """`data` as JSON at `path` (`dump`: `json.dumps`'s options), whole or not at all."""
    with written_whole(path) as temporary:
        temporary.write_text(json.dumps(data, **dump))


def _new_file(path: Path, mode: int) -> Path:
    """A hidden file of a name no other writer took, created empty beside `path`."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
            return temporary
        except FileExistsError:
            continue
