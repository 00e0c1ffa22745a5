"""What every page shares: settings, the run store, the chosen dataset, and server-wide caches.

Resources (the store, loaded models) exist once per server process; results data is cached per
sweep version (`RunStore.version`), so every session sees the same sweeps and a new trial shows up
at the next poll. Nothing in here imports TensorFlow.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import SQLAlchemyError

from core.data.datasets import Dataset, DatasetError, list_datasets, load_dataset
from core.data.decisions import DecisionLog
from core.data.scan import ScanReport, scan_dataset
from core.runs.records import FinalModel, TrialRecord
from core.runs.store import BAD_RECORD, RunStore, StoreError
from core.runs.store_messages import database_reason, url_for_humans
from core.settings import Settings, SettingsError, load_settings
from ui.widgets import plain, user_error

SECRET_ENV = {"data_roots": "TRANSFERLAB_DATA_ROOTS", "storage": "TRANSFERLAB_STORAGE", "home": "TRANSFERLAB_HOME"}
DATASET_KEY = "dataset"
WIDGET_KEY = "dataset_choice"
SCANS_KEPT = 8
# What a store that cannot be reached, parsed or written raises (the driver's error, Optuna's wrapper of it)
STORE_FAILURES = (SQLAlchemyError, StorageInternalError, OSError)


def _secrets() -> dict[str, Any]:
    try:
        return {k: st.secrets[k] for k in SECRET_ENV if k in st.secrets}
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}


def settings() -> Settings:
    """Environment variables first, then `.streamlit/secrets.toml` (data_roots, storage, home).

    Secrets are exported to the environment so that worker processes launched from the app see
    the same data roots and store.
    """
    for key, value in _secrets().items():
        text = os.pathsep.join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        os.environ.setdefault(SECRET_ENV[key], text)
    return load_settings()


@st.cache_resource(show_spinner=False)
def _store(url: str, artifacts_dir: str, artifacts: str) -> RunStore:
    return RunStore(url, artifacts_dir=Path(artifacts_dir), artifacts=artifacts)


def store() -> RunStore:
    s = settings()
    return _store(s.storage_url, str(s.artifacts_dir), s.artifacts)


def store_failure(error: BaseException) -> str:
    """One line for a store that cannot be reached or written: the database's reason, never a traceback."""
    reason = database_reason(error) or (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (f"Cannot use the run store {plain(url_for_humans(settings().storage_url))}: {plain(reason)} "
            "(set TRANSFERLAB_STORAGE or storage in .streamlit/secrets.toml)")


def require_store() -> RunStore:
    """The run store, or one clear line and the end of this run (a URL that is garbage, a server that
    cannot be reached, a new database that cannot be written) instead of an exception box on every page."""
    try:
        opened = store()
        if change := opened.file_change():     # its open connections would read a deleted file on
            st.error(f"The run store's file {plain(opened.file.path)} {change}: nothing is shown or written "
                     "until it is back. Restore it, or restart the server to begin a new, empty store.",
                     icon=":material/error:")
            st.stop()
        opened.sweep_names()           # still reachable
        return opened
    except SettingsError as error:
        st.error(plain(error), icon=":material/error:")
    except STORE_FAILURES as error:
        st.error(store_failure(error), icon=":material/error:")
    st.stop()


def store_action(action: Callable[[], None]) -> bool:
    """Make a change to the store; a refusal (a running sweep, a dataset outside the roots) or a store
    that cannot be written shows as one line. True when it went through."""
    try:
        action()
    except (DatasetError, StoreError) as error:
        user_error(error)
    except STORE_FAILURES as error:
        st.error(store_failure(error), icon=":material/error:")
    else:
        return True
    return False


@st.cache_resource(show_spinner="Resuming sweeps left running by a restart…")
def _resume_once(url: str) -> list[str]:
    from core.search.lifecycle import resume_unfinished
    return resume_unfinished(store())


def start_server() -> list[str]:
    """Once per server process: relaunch sweeps whose driver died with the previous server. A record it
    cannot read (or a driver it cannot start) is a warning, tried again next run, never a page down."""
    try:
        return _resume_once(settings().storage_url)
    except BAD_RECORD + STORE_FAILURES as error:
        st.warning(f"Sweeps left running by a restart were not all resumed: {plain(error)}",
                   icon=":material/warning:")
        return []


# --- datasets ---------------------------------------------------------------------------------------

def datasets() -> list[Path]:
    return list_datasets(settings().data_roots)


def dataset_label(path: Path) -> str:
    """A dataset's name relative to its data root, with the root when there are several."""
    roots = settings().data_roots
    for root in roots:
        if path.is_relative_to(root):
            name = str(path.relative_to(root)) or path.name
            return name if len(roots) == 1 else f"{name}  ({root})"
    return str(path)


def dataset_picker() -> None:
    """The sidebar's dataset choice, shared by every page.

    The choice lives in a plain session key (DATASET_KEY), not only in the widget: it survives runs
    where the sidebar is not drawn, and a page may set it (a dataset just uploaded is preselected).
    """
    found = [str(p) for p in datasets()]
    if not found:
        st.info("No dataset yet: upload a zip on the Dataset page, or put class folders under "
                + ", ".join(map(str, settings().data_roots)))
        return
    if st.session_state.get(DATASET_KEY) not in found:
        st.session_state[DATASET_KEY] = found[0]
    st.session_state[WIDGET_KEY] = st.session_state[DATASET_KEY]
    st.selectbox("Dataset", found, key=WIDGET_KEY, format_func=lambda p: dataset_label(Path(p)),
                 on_change=lambda: st.session_state.update({DATASET_KEY: st.session_state[WIDGET_KEY]}),
                 help="Datasets found under the data folders; add one on the Dataset page")


def select_dataset(path: Path) -> None:
    """Make `path` the chosen dataset (e.g. right after an upload)."""
    st.session_state[DATASET_KEY] = str(path)


def chosen_dataset() -> Path | None:
    """The sidebar's choice, or the first dataset found when the sidebar has not been drawn yet."""
    value = st.session_state.get(DATASET_KEY)
    if not value:
        found = datasets()
        value = str(found[0]) if found else None
    return Path(value) if value else None


def _tree_stamp(root: Path) -> tuple[int, int]:
    """(files, newest mtime) under a dataset: changes when a file is added, removed or rewritten."""
    count, newest = 0, 0
    folder = root.parent if root.is_file() else root
    for dirpath, _, files in os.walk(folder):
        for name in files:
            count += 1
            newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime_ns)
    return count, newest


@st.cache_resource(show_spinner=False)
def _scans() -> OrderedDict:
    return OrderedDict()


def scan(path: Path) -> tuple[Dataset, ScanReport]:
    """Load and scan a dataset once per content and decisions version (shared by every session), with a
    progress bar."""
    key = (str(path), _tree_stamp(path), DecisionLog(path).latest().version)
    scans = _scans()
    if key not in scans:
        bar = st.progress(0.0, text=f"Scanning {path.name}…")
        dataset = load_dataset(path, validate=False)
        report = scan_dataset(dataset, progress=lambda done, total: bar.progress(
            done / max(total, 1), text=f"Scanning {path.name}: {done} / {total} images"))
        bar.empty()
        scans[key] = (dataset, report)
        while len(scans) > SCANS_KEPT:
            scans.popitem(last=False)
    return scans[key]


# --- sweeps ------------------------------------------------------------------------------------------

def sweep_names() -> list[str]:
    """The sweeps a page can show; a warning names each one whose record cannot be read, left out. One read
    of every sweep's attributes (`RunStore.sweep_problems`), not one per sweep."""
    names, problems = [], []
    for name, problem in store().sweep_problems().items():
        if problem:
            problems.append(f"'{plain(name)}': {plain(problem)}")
        else:
            names.append(name)
    if problems:
        st.warning("Left out of this page, as their records cannot be read: " + "; ".join(problems),
                   icon=":material/warning:")
    return names


@st.cache_data(show_spinner=False, max_entries=32)
def _trials(url: str, names: tuple[str, ...], versions: tuple) -> pd.DataFrame:
    return store().trials_frame(list(names))


def trials(names: list[str]) -> pd.DataFrame:
    """The trials table of one or more sweeps, recomputed only when one of them changed."""
    rs = store()
    return _trials(rs.url, tuple(names), tuple(rs.version(n) for n in names))


@st.cache_data(show_spinner=False, max_entries=32)
def _final(url: str, name: str, version: tuple) -> FinalModel | None:
    return store().final(name, local=True)            # model paths: local files (the artifact cache)


def final(name: str) -> FinalModel | None:
    return _final(store().url, name, store().version(name))


@st.cache_data(show_spinner=False, max_entries=256)
def _trial(url: str, name: str, number: int, version: tuple) -> TrialRecord:
    return store().trial(name, number)


def trial(name: str, number: int) -> TrialRecord:
    return _trial(store().url, name, number, store().version(name))

