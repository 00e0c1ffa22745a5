"""Streamlit-side building blocks every page uses: a chart with its PNG download, a table with its
CSV download, even grids of square thumbnails of image files, and user-facing error messages."""
from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw, ImageOps

from core.data.images import BadImageError, open_rgb
from core.results.charts import fig_to_png
from core.results.tables import mixed_as_text
from core.text import csv_text
from core.text import plain as plain   # the pages' one Markdown escape (core.text holds both escapes)

THUMB_SIDE = 128
GRID_WIDTH = 940          # px of the main column in a 1400 px window with the sidebar open (wide layout)
GRID_GAP = 16             # px between st.columns (gap "small")
PAD_COLOUR = (240, 242, 246)   # Streamlit's light secondary background, around a padded tile


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


Fit = Literal["crop", "pad"]


def square_tile(image: Image.Image, side: int, fit: Fit = "pad") -> Image.Image:
    """The image as a side x side tile, so a grid's rows line up: centre-cropped to a square ("crop"), or
    whole, shrunk onto a light square ("pad": where the edges are the evidence, as between a copy and its
    cropped twin)."""
    if fit == "crop":
        return ImageOps.fit(image, (side, side), Image.Resampling.LANCZOS)
    return ImageOps.pad(image, (side, side), Image.Resampling.LANCZOS, color=PAD_COLOUR)


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail(path: str, mtime_ns: int, side: int, fit: Fit) -> np.ndarray | None:
    try:
        image = open_rgb(path, at_least=side)
    except BadImageError:
        return None
    return np.asarray(square_tile(image, side, fit))


def thumbnail(path: str, side: int = THUMB_SIDE, fit: Fit = "pad") -> np.ndarray:
    """A side x side RGB tile of an image file (`square_tile`; cached by path and mtime), or a broken tile."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return broken_tile(side)
    found = _thumbnail(path, stamp, side, fit)
    return broken_tile(side) if found is None else found


def per_row(side: int) -> int:
    """How many tiles of about `side` px a grid row holds: as many as fit the main column of a 1400 px window."""
    return max(2, (GRID_WIDTH + GRID_GAP) // (side + GRID_GAP))


def image_grid(paths: Sequence[str], captions: Sequence[str] | None = None, side: int = THUMB_SIDE,
               fit: Fit = "pad") -> None:
    """Square thumbnails in rows of `per_row(side)` columns, each filling its column (so rows line up in any
    window), with its caption (default: the file name) shown as text: captions are Markdown in the browser,
    and file and class names are anyone's."""
    if not paths:
        return
    captions = list(captions) if captions is not None else [Path(p).name for p in paths]
    n = per_row(side)
    for start in range(0, len(paths), n):
        for column, path, caption in zip(st.columns(n), paths[start:start + n], captions[start:start + n]):
            column.image(thumbnail(path, side, fit), caption=plain(caption), width="stretch")


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def user_error(error: Exception, what_to_do: str = "") -> None:
    """A problem the user can fix: what happened (the engine's message names the file or field) and what to do."""
    st.error(plain(error) + (f"\n\n{what_to_do}" if what_to_do else ""), icon=":material/error:")
