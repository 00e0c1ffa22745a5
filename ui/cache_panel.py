"""The caches that make sweeps cheap, on the Sweep page: size on disk, hits and misses, Clear."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.image_cache import cache_info, clear_cache
from core.training.activations import ActivationCache
from ui import state


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def cache_panel(trials: pd.DataFrame | None = None) -> None:
    """Decoded images and backbone activations on disk; where each trial's activations came from."""
    root = state.settings().cache_dir
    activations = ActivationCache(root)
    with st.expander("Caches", icon=":material/storage:"):
        st.caption("The backbone runs once per dataset, size and cut; every later trial reads its activations "
                   "from disk. An entry is keyed by all its inputs (dataset content, backbone, weights, size, "
                   "cut, augmented views), so a change makes a new one instead of a stale hit.")
        acts, images = activations.usage(), cache_info(root)
        left, right = st.columns(2)
        left.metric("Backbone activations", _size(acts["bytes"]), f"{acts['entries']} entries", delta_color="off")
        right.metric("Decoded images", _size(images["bytes"]), f"{images['entries']} entries", delta_color="off")
        if trials is not None and "cache" in trials and len(trials):
            counts = trials["cache"].replace("", "not yet").value_counts()
            st.caption("This sweep's trials: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
                       + " (miss: computed, hit: read from disk, off: trained on images, e.g. the cache "
                         "is switched off or nothing below the trained layers is frozen)")
        if st.button("Clear caches", icon=":material/delete:",
                     help="frees the disk; running sweeps keep what they have open and recompute the rest"):
            freed = activations.clear() + clear_cache(root)
            st.success(f"Freed {_size(freed)}.")
