"""The Dataset page's near-duplicates by content: flipped, cropped or recoloured copies the scan's
hashes miss, found from the cosine similarity of a frozen backbone's pooled features, shown with
their similarity, and kept on one side of every split once saved with the dataset's decisions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.data.datasets import Dataset
from core.data.decisions import DecisionLog, DecisionsError
from core.data.near_duplicates import DEFAULT_THRESHOLD, content_groups
from ui import auth
from ui.widgets import image_grid, user_error

GROUPS_SHOWN = 20


def _features(dataset: Dataset, version: int) -> tuple[Dataset, np.ndarray] | None:
    """The pooled features of every image, computed on request (a backbone pass, cached on disk by the
    activation cache) and kept for the session, so moving the threshold costs nothing."""
    key = ("content-features", str(dataset.root), version)
    if key in st.session_state:
        return st.session_state[key]
    if not st.button("Find near-duplicates by content", icon=":material/join:",
                     help="runs EfficientNet-Lite0 once over every image (cached for later)"):
        return None
    from core.training.plan import content_features
    bar = st.progress(0.0, text="Backbone features…")
    found = content_features(dataset.root, progress=lambda done, total: bar.progress(
        done / max(total, 1), text=f"Backbone features: {done} / {total} images"))
    bar.empty()
    st.session_state[key] = found
    return found


def content_duplicates(dataset: Dataset) -> None:
    st.markdown("**Near-duplicates by content**")
    log = DecisionLog(dataset.root)
    latest = log.latest()
    if latest.groups:
        st.caption(f"{len(latest.groups)} content group(s) saved: every split keeps each group on one side.")
    found = _features(dataset, latest.version)
    if found is None:
        return
    decided, features = found
    threshold = st.slider("Cosine similarity at least", 0.80, 0.999, DEFAULT_THRESHOLD, 0.001, format="%.3f",
                          help="two images this similar (or linked through others) form a group")
    groups = content_groups(decided, features, threshold)
    if not groups:
        st.success("No near-duplicates by content at this threshold.")
        return
    st.markdown(f"**{len(groups)}** group(s), most similar first.")
    base = Path(decided.base_dir)
    for group in groups[:GROUPS_SHOWN]:
        best = {p: max(s.similarity for s in group.pairs if p in (s.a, s.b)) for p in group.paths}
        image_grid([str(base / p) for p in group.paths], [f"{p} · {best[p]:.3f}" for p in group.paths],
                   side=112)
    if st.button(f"Keep these {len(groups)} group(s) together in every split", icon=":material/link:"):
        try:
            saved = log.save_groups(groups, who=auth.user())
        except DecisionsError as error:
            user_error(error)
            return
        st.toast(f"Saved as decisions version {saved.version}: the next split keeps each group on one side.")
        st.rerun()
