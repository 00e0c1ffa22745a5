"""core.files.written_whole: a file appears whole or not at all, with the permissions its caller asks for."""
from __future__ import annotations

import os
import stat

import pytest

from core.files import write_json_whole, written_whole


def test_a_block_that_fails_leaves_neither_the_file_nor_its_temporary(tmp_path):
    with pytest.raises(RuntimeError), written_whole(tmp_path / "new" / "out.bin") as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash midway")
    assert list((tmp_path / "new").iterdir()) == []


def test_it_replaces_a_file_whole_or_keeps_the_existing_one(tmp_path):
    path = tmp_path / "v1.json"
    write_json_whole(path, {"a": 1})
    write_json_whole(path, {"a": 2})
    assert path.read_text() == '{"a": 2}'
    with pytest.raises(FileExistsError), written_whole(path, keep_existing=True) as temporary:
        temporary.write_text("the second saver's")
    assert path.read_text() == '{"a": 2}' and [p.name for p in tmp_path.iterdir()] == ["v1.json"]


def test_private_by_default_or_as_open_makes_it(tmp_path):
    umask = os.umask(0o022)
    try:
        with written_whole(tmp_path / "private") as temporary:
            temporary.write_text("x")
        with written_whole(tmp_path / "shared", mode=0o666) as temporary:
            temporary.write_text("x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
