"""The Dataset page's near-duplicates by content: flipped, cropped or recoloured copies the scan's
hashes miss, found from the cosine similarity of a frozen backbone's pooled features, shown with
their similarity, kept on one side of every split once saved with the dataset's decisions, and each
group's copies excluded in one click (a label decision, undone like any other)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from core.data.datasets import Dataset, load_dataset
from core.data.decisions import (Action, ContentGroup, Decision, DecisionLog, Decisions, DecisionsError,
                                 relative_path)
from core.data.near_duplicates import DEFAULT_THRESHOLD, content_groups
from ui import auth
from ui.decision_history import decision_history
from ui.widgets import image_grid, plain, user_error

GROUPS_SHOWN = 20


@dataclass(frozen=True)
class _Features:
    """The pooled features of a dataset's images, as its decisions `version` left it."""

    version: int
    dataset: Dataset
    features: np.ndarray


def _excluded(decisions: Decisions) -> set[str]:
    return {d.path for d in decisions.decisions if d.action == Action.EXCLUDE}


def _still_valid(found: _Features, log: DecisionLog, latest: Decisions) -> tuple[Dataset, np.ndarray] | None:
    """The features computed at an earlier version, less the images excluded since; None when a later
    version brought an image back (an undo), whose features were never computed."""
    try:
        before = _excluded(log.at(found.version))
    except DecisionsError:
        return None
    gone = _excluded(latest)
    if not before <= gone:
        return None
    rows = [i for i, p in enumerate(found.dataset.paths) if relative_path(found.dataset, p) not in gone]
    return found.dataset.subset(rows), found.features[rows]


def _features(dataset: Dataset, log: DecisionLog, latest: Decisions) -> tuple[Dataset, np.ndarray] | None:
    """The pooled features of every image, computed on request (a backbone pass, cached on disk by the
    activation cache) and kept for the session, so moving the threshold or excluding copies costs nothing."""
    key = ("content-features", str(dataset.root))
    kept = st.session_state.get(key)
    if kept is not None and (valid := _still_valid(kept, log, latest)) is not None:
        return valid
    if not st.button("Find near-duplicates by content", icon=":material/join:",
                     help="runs EfficientNet-Lite0 once over every image (cached for later)"):
        return None
    from core.training.plan import content_features
    bar = st.progress(0.0, text="Backbone features…")
    decided, features = content_features(dataset.root, progress=lambda done, total: bar.progress(
        done / max(total, 1), text=f"Backbone features: {done} / {total} images"))
    bar.empty()
    st.session_state[key] = _Features(latest.version, decided, features)
    return decided, features


def _copies(n: int) -> str:
    return f"{n} cop{'y' if n == 1 else 'ies'}"


def _exclude_copies(log: DecisionLog, root: str, group: ContentGroup) -> None:
    """Keep the group's first image, exclude the others: one new version of the dataset's decisions."""
    kept, copies = group.paths[0], group.paths[1:]
    try:
        found = load_dataset(root, validate=False, decisions=False)       # the images as on disk
        saved = log.record([Decision(p, Action.EXCLUDE) for p in copies], found, who=auth.user())
    except DecisionsError as error:
        user_error(error)
        return
    st.toast(f"{_copies(len(copies))} of {plain(kept)} excluded: decisions version {saved.version} "
             "(undo under the groups).", icon=":material/filter_none:")
    st.rerun()


def _group(log: DecisionLog, root: str, base: Path, group: ContentGroup) -> None:
    best = {p: max(s.similarity for s in group.pairs if p in (s.a, s.b)) for p in group.paths}
    image_grid([str(base / p) for p in group.paths], [f"{p} · {best[p]:.3f}" for p in group.paths], side=112)
    if st.button(f"Exclude the {_copies(len(group.paths) - 1)}, keep {plain(group.paths[0])}",
                 key=f"exclude-copies-{group.paths[0]}", icon=":material/filter_none:",
                 help="a label decision: every later scan, split and sweep leaves them out; "
                      "no file is touched, and the undo brings them back"):
        _exclude_copies(log, root, group)


def content_duplicates(dataset: Dataset) -> None:
    st.markdown("**Near-duplicates by content**")
    log = DecisionLog(dataset.root)
    latest = log.latest()
    if latest.groups:
        st.caption(f"{len(latest.groups)} content group(s) saved: every split keeps each group on one side.")
    found = _features(dataset, log, latest)
    if found is not None:
        _groups(log, latest, *found)
    if latest.version:
        decision_history(log, key="content-duplicates")


def _groups(log: DecisionLog, latest: Decisions, decided: Dataset, features: np.ndarray) -> None:
    threshold = st.slider("Cosine similarity at least", 0.80, 0.999, DEFAULT_THRESHOLD, 0.001, format="%.3f",
                          help="two images this similar (or linked through others) form a group")
    groups = content_groups(decided, features, threshold)
    if not groups:
        st.success("No near-duplicates by content at this threshold.")
        return
    st.markdown(f"**{len(groups)}** group(s), most similar first.")
    base = Path(decided.base_dir)
    for group in groups[:GROUPS_SHOWN]:
        _group(log, decided.root, base, group)
    if st.button(f"Keep these {len(groups)} group(s) together in every split", icon=":material/link:"):
        try:
            saved = log.save_groups(groups, who=auth.user())
        except DecisionsError as error:
            user_error(error)
            return
        st.toast(f"Saved as decisions version {saved.version}: the next split keeps each group on one side.")
        st.rerun()
