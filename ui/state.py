"""What every page shares: settings, the run store, the chosen dataset, and server-wide caches.

Resources (the store, loaded models) exist once per server process; results data is cached per
sweep version (`RunStore.version`), so every session sees the same sweeps and a new trial shows up
at the next poll. Nothing in here imports TensorFlow.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data.datasets import Dataset, list_datasets, load_dataset
from core.data.scan import ScanReport, scan_dataset
from core.runs.records import FinalModel, TrialRecord
from core.runs.store import RunStore
from core.settings import Settings, load_settings

SECRET_ENV = {"data_roots": "TRANSFERLAB_DATA_ROOTS", "storage": "TRANSFERLAB_STORAGE", "home": "TRANSFERLAB_HOME"}
DATASET_KEY = "dataset"
WIDGET_KEY = "dataset_choice"
SCANS_KEPT = 8


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
def _store(url: str, artifacts_dir: str) -> RunStore:
    return RunStore(url, artifacts_dir=Path(artifacts_dir))


def store() -> RunStore:
    s = settings()
    return _store(s.storage_url, str(s.artifacts_dir))


@st.cache_resource(show_spinner="Resuming sweeps left running by a restart…")
def _resume_once(url: str) -> list[str]:
    from core.search.lifecycle import resume_unfinished
    return resume_unfinished(store())


def start_server() -> list[str]:
    """Once per server process: relaunch sweeps whose driver died with the previous server."""
    return _resume_once(settings().storage_url)


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
    """Load and scan a dataset once per content (shared by every session), with a progress bar."""
    key = (str(path), _tree_stamp(path))
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

@st.cache_data(show_spinner=False, max_entries=32)
def _trials(url: str, names: tuple[str, ...], versions: tuple) -> pd.DataFrame:
    return store().trials_frame(list(names))


def trials(names: list[str]) -> pd.DataFrame:
    """The trials table of one or more sweeps, recomputed only when one of them changed."""
    rs = store()
    return _trials(rs.url, tuple(names), tuple(rs.version(n) for n in names))


@st.cache_data(show_spinner=False, max_entries=32)
def _final(url: str, name: str, version: tuple) -> FinalModel | None:
    return store().final(name)


def final(name: str) -> FinalModel | None:
    return _final(store().url, name, store().version(name))


@st.cache_data(show_spinner=False, max_entries=256)
def _trial(url: str, name: str, number: int, version: tuple) -> TrialRecord:
    return store().trial(name, number)


def trial(name: str, number: int) -> TrialRecord:
    return _trial(store().url, name, number, store().version(name))

