"""The final model leaves the app: pick a format, export and check it, download the verified zip.

The export runs in the script thread behind a spinner (seconds for a small model, about a minute for
TFLite at 224 px) into a fresh temporary folder, removed once its zip is made: two exports never share
files, and the server keeps none. The zip is kept in the session so reruns keep the download. Importing
this module is light: TensorFlow loads when a button is pressed.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.inference.export_files import CARD_NAME, FORMATS, LABELS, snippet
from core.inference.exports import ExportCheckError, export, final_card, split_images
from core.runs.records import FinalModel
from ui import state
from ui.widgets import plain


@dataclass
class _Offer:
    """What the page shows after pressing the button: the verified zip, or why there is none."""

    archive: bytes = b""
    summary: str = ""
    snippet: str = ""               # the README's lines: the card's temperature and detector applied
    error: str = ""


def _run(final: FinalModel, sweep: str, fmt: str) -> _Offer:
    from core.inference.model_card import ModelFileError
    try:
        with tempfile.TemporaryDirectory(prefix="transferlab-export-") as scratch:
            result = export(final.model_path, fmt, Path(scratch) / f"{sweep}-{fmt}",
                            card=final_card(final, state.store().spec(sweep)), images=split_images(final))
            card = json.loads((result.folder / CARD_NAME).read_text())
            return _Offer(archive=result.archive(), summary=result.summary(),
                          snippet=snippet(fmt, result.path.name, card))
    except (ExportCheckError, ModelFileError) as error:
        return _Offer(error=str(error))
    except OSError as error:
        return _Offer(error=f"cannot export: {error.strerror or error}")


def export_panel(final: FinalModel, sweep: str) -> None:
    """Format choice, the export-and-check button, then the download, parity figure and loading snippet."""
    st.markdown("**Export the final model**")
    fmt = st.selectbox("Format", FORMATS, format_func=LABELS.get, key=f"export-format-{sweep}",
                       help="every export is reloaded in its own runtime and must predict like the model "
                            "on the test images before it is offered")
    path = Path(final.model_path)
    key = f"export-{sweep}-{fmt}-{path}-{path.stat().st_mtime_ns if path.exists() else 0}"
    if st.button(f"Export as {LABELS[fmt]} and check it", key=f"export-button-{sweep}"):
        with st.spinner(f"Exporting as {LABELS[fmt]} and checking it against the model…"):
            st.session_state[key] = _run(final, sweep, fmt)
    offer: _Offer | None = st.session_state.get(key)
    if offer is None:
        return
    if offer.error:
        st.error(plain(offer.error))
        return
    st.success(offer.summary)
    st.download_button(f"Download {LABELS[fmt]} (zip)", offer.archive, file_name=f"{sweep}-{fmt}.zip",
                       mime="application/zip", key=f"export-download-{sweep}-{fmt}")
    st.caption("The zip holds the model, `model_card.json` and a README; load it like this:")
    st.code(offer.snippet, language="python")
