"""The Dataset page's example button: TensorFlow's flower photos, downloaded (as `python -m core
fetch-example flowers` does) into the first data root with a progress bar, then chosen."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.data.fetch import FetchError, fetch_example
from ui import state
from ui.widgets import user_error

EXAMPLE = "flowers"
LABEL = "Get the example flower dataset"


def _bar() -> Callable[[int, int], None]:
    """A progress bar moved by the download's (done, total) bytes, redrawn once per percent, not per block."""
    bar = st.progress(0.0, text="Downloading the flower photos…")
    shown = -1

    def progress(done: int, total: int) -> None:
        nonlocal shown
        percent = int(100 * done / total) if total else 0
        if percent != shown:
            shown = percent
            bar.progress(percent / 100, text=f"Downloading the flower photos: {done / 1e6:.0f} of "
                                             f"{total / 1e6:.0f} MB")
    return progress


def example_button() -> None:
    """The button; a click downloads (once: a present copy is reused), checks, unpacks and selects it."""
    if not st.button(LABEL, icon=":material/download:",
                     help="TensorFlow's flower_photos (5 classes, about 3,700 photos, 229 MB): downloaded with its "
                          "published checksum into the data folder; needs internet"):
        return
    try:
        root = fetch_example(EXAMPLE, state.settings().upload_root, progress=_bar())
    except FetchError as error:
        user_error(error, "Without internet: download the file on another machine and unpack it into the data "
                          "folder, or upload a zip of class folders.")
        return
    state.select_dataset(root)
    st.rerun()
