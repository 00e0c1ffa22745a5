"""A SQLite run store's file is never silently replaced by an empty one (issue 18): a deleted file stays
missing for the connections already open and for every later opening, and a replaced one is noticed."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from apptest import tiny_spec
from sqlalchemy.exc import SQLAlchemyError

from core.runs.optuna_storage import StoreFileMissing, made_marker
from core.runs.store import RunStore


def test_an_open_store_makes_no_empty_database_where_its_file_was(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = RunStore(f"sqlite:///{path}")
    store.create_sweep(tiny_spec("kept", tmp_path))
    assert store.file_change() == ""
    path.unlink()
    store.storage.engine.dispose()          # the pool's next connection is a new one, as after a while
    with pytest.raises(SQLAlchemyError):
        store.storage.engine.connect().close()
    assert not path.exists()
    assert store.file_change().startswith("was deleted")


def test_a_new_opening_refuses_a_deleted_store_until_told_to_start_anew(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    RunStore(f"sqlite:///{path}").create_sweep(tiny_spec("kept", tmp_path))
    path.unlink()
    with pytest.raises(StoreFileMissing, match="restore it, or delete .*store.db.made"):
        RunStore(f"sqlite:///{path}")
    assert not path.exists()
    made_marker(path).unlink()               # the user's choice: a new, empty store
    assert RunStore(f"sqlite:///{path}").sweep_names() == []


def test_a_replaced_file_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = RunStore(f"sqlite:///{path}")
    RunStore(f"sqlite:///{tmp_path / 'other.db'}")
    shutil.copy(tmp_path / "other.db", tmp_path / "incoming.db")
    (tmp_path / "incoming.db").replace(path)
    assert store.file_change().startswith("was replaced by another file")
