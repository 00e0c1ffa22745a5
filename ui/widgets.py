"""Streamlit-side building blocks every page uses: a chart with its PNG download, a table with its
CSV download, thumbnail grids of image files, and user-facing error messages."""
from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw

from core.data.images import BadImageError, open_rgb
from core.results.charts import fig_to_png
from core.results.tables import mixed_as_text
from core.text import csv_text
from core.text import plain as plain   # the pages' one Markdown escape (core.text holds both escapes)

THUMB_SIDE = 128


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower() or "chart"


def chart(fig: go.Figure, name: str, *, key: str | None = None, selectable: bool = False) -> Any:
    """Draw a figure with a "PNG" download under it (rendered only when clicked: kaleido is slow).

    With `selectable`, clicks on points rerun the page and the selection is returned.
    """
    key = key or f"chart-{_slug(name)}"
    state = st.plotly_chart(fig, key=key, on_select="rerun" if selectable else "ignore",
                            selection_mode="points", config={"displaylogo": False})
    st.download_button("PNG", data=lambda: fig_to_png(fig), file_name=f"{_slug(name)}.png", mime="image/png",
                       key=f"{key}-png", icon=":material/download:", type="tertiary",
                       help="Download this chart as a PNG image")
    return state


def csv_bytes(frame: pd.DataFrame, index: bool = False) -> bytes:
    """The table as a CSV download, formulas defused (`core.text.csv_text`)."""
    return csv_text(frame, index=index).encode()


def table(frame: pd.DataFrame, name: str, *, key: str | None = None, index: bool = False,
          **dataframe_args: Any) -> Any:
    """A sortable table with a "CSV" download of exactly what it shows."""
    key = key or f"table-{_slug(name)}"
    shown = st.dataframe(mixed_as_text(frame), hide_index=not index, key=key, **dataframe_args)
    st.download_button("CSV", data=csv_bytes(frame, index=index), file_name=f"{_slug(name)}.csv",
                       mime="text/csv", key=f"{key}-csv", icon=":material/download:", type="tertiary",
                       help="Download this table as CSV")
    return shown


def broken_tile(side: int = THUMB_SIDE) -> np.ndarray:
    """A grey tile with a red cross: where a thumbnail would be for a file that is not a usable image."""
    tile = Image.new("RGB", (side, side), (235, 235, 235))
    draw = ImageDraw.Draw(tile)
    margin = side // 4
    draw.line((margin, margin, side - margin, side - margin), fill=(213, 94, 0), width=max(2, side // 24))
    draw.line((margin, side - margin, side - margin, margin), fill=(213, 94, 0), width=max(2, side // 24))
    return np.asarray(tile)


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail(path: str, mtime_ns: int, side: int) -> np.ndarray | None:
    try:
        image = open_rgb(path, at_least=side)
    except BadImageError:
        return None
    image.thumbnail((side, side))
    return np.asarray(image)


def thumbnail(path: str, side: int = THUMB_SIDE) -> np.ndarray:
    """A small RGB copy of an image file (cached by path and mtime), or a broken tile."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return broken_tile(side)
    found = _thumbnail(path, stamp, side)
    return broken_tile(side) if found is None else found


def image_grid(paths: Sequence[str], captions: Sequence[str] | None = None, side: int = THUMB_SIDE) -> None:
    """Thumbnails in rows, each with its caption (default: the file name), shown as text: captions are
    Markdown in the browser, and file and class names are anyone's."""
    if not paths:
        return
    captions = list(captions) if captions is not None else [Path(p).name for p in paths]
    st.image([thumbnail(p, side) for p in paths], caption=[plain(c) for c in captions], width=side)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def user_error(error: Exception, what_to_do: str = "") -> None:
    """A problem the user can fix: what happened (the engine's message names the file or field) and what to do."""
    st.error(plain(error) + (f"\n\n{what_to_do}" if what_to_do else ""), icon=":material/error:")
