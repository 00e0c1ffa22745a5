"""The Dataset page's "Suspect labels" tab: a sweep's out-of-fold ranking (cleanlab) reviewed image by
image. Each mark (relabel as X, exclude, fine) is saved as a new version of the dataset's decisions
file, which every later scan, split and sweep applies; a save can be undone and exported as CSV."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.datasets import Dataset, dataset_path_anywhere, load_dataset
from core.data.decisions import Action, Decision, DecisionLog, DecisionsError, describe, relative_path
from core.quality.suspects import Suspect, SuspectsError, rank_suspects
from ui import auth, state
from ui.decision_history import decision_history
from ui.widgets import plain, thumbnail, user_error

PER_ROW = 4
UNDECIDED = "undecided"


def sweeps_on(root: Path) -> list[str]:
    """The sweeps whose dataset is this folder, newest last."""
    settings, rs = state.settings(), state.store()
    found = []
    for name in state.sweep_names():
        try:
            if dataset_path_anywhere(rs.spec(name).data.dataset, settings.data_roots).resolve() == root.resolve():
                found.append(name)
        except (OSError, ValueError):       # a sweep whose dataset is gone or outside the roots: not this one
            continue
    return found


@st.cache_data(show_spinner="Ranking the training images by label quality…", max_entries=16)
def _ranking(url: str, name: str, version: tuple, top_trials: int, outliers: bool) -> list[Suspect]:
    return rank_suspects(state.store(), name, top_trials=top_trials, with_outliers=outliers)


def _choices(classes: list[str], given: str) -> list[str]:
    return [UNDECIDED, Action.FINE.value, Action.EXCLUDE.value] + [f"relabel as {c}" for c in classes if c != given]


def _as_choice(decision: Decision | None) -> str:
    if decision is None:
        return UNDECIDED
    return f"relabel as {decision.label}" if decision.action == Action.RELABEL else decision.action.value


def _as_decision(path: str, choice: str) -> Decision | None:
    if choice == UNDECIDED:
        return None
    if choice.startswith("relabel as "):
        return Decision(path, Action.RELABEL, label=choice.removeprefix("relabel as "))
    return Decision(path, Action(choice))


def _gradcam(name: str, suspect: Suspect) -> None:
    """The final model's Grad-CAM for the suggested class: where it sees that class in the image."""
    final = state.final(name)
    if final is None:
        st.caption("Grad-CAM needs the sweep's final model (it is made when the sweep finishes).")
        return
    from core.inference.explain import overlay
    from core.inference.predict import predict_images
    from ui.models import heatmap, loaded_model
    model_path = Path(final.model_path)
    loaded = loaded_model(model_path)
    if suspect.suggested not in loaded.classes:
        st.caption(f"The final model has no class '{plain(suspect.suggested)}'.")
        return
    [prediction] = predict_images(loaded, [(suspect.path, suspect.path)], top_k=1)
    if prediction.error:
        st.caption(plain(prediction.error))
        return
    cam = heatmap(model_path, loaded, prediction.image, loaded.classes.index(suspect.suggested), "gradcam")
    st.image(overlay(prediction.image, cam), caption=f"where it sees {plain(suspect.suggested)}", width=160)


def _card(name: str, suspect: Suspect, classes: list[str], current: str, key: str) -> str:
    st.image(thumbnail(suspect.path, 160), width=160)
    flag = " · flagged" if suspect.flagged else ""
    outlier = f" · outlier {suspect.outlier_score:.2f}" if suspect.outlier_score is not None else ""
    st.caption(f"#{suspect.rank} · {plain(suspect.given)} → {plain(suspect.suggested)} · quality "
               f"{suspect.label_quality:.2f}{flag}{outlier}")
    options = _choices(classes, suspect.given)
    choice = st.selectbox("Decision", options, index=options.index(current) if current in options else 0,
                          key=key, label_visibility="collapsed")
    if st.toggle("Grad-CAM", key=f"{key}-cam", help="the final model's heat map for the suggested class"):
        _gradcam(name, suspect)
    return choice


def suspects_tab(dataset: Dataset) -> None:
    names = sweeps_on(Path(dataset.root))
    if not names:
        st.info("No sweep has run on this dataset yet. Every trial's K-fold cross-validation scores each "
                "training image with a model that never saw it; once one trial has finished, its scores "
                "rank the images whose label looks wrong here.")
        return
    left, middle, right = st.columns([2, 1, 1])
    name = left.selectbox("Sweep", names, index=len(names) - 1, help="its out-of-fold scores rank the images")
    top_trials = middle.number_input("Agreement of the best trials", 1, 5, 1,
                                     help="average the out-of-fold scores of this many best trials")
    shown = right.number_input("Images to review", 4, 200, 12, step=4)
    outliers = st.checkbox("Outlier scores", help="cleanlab's out-of-distribution score on the cached backbone "
                           "features: near 0, the image is unlike the others (maybe no class at all); runs "
                           "the backbone if its cache was cleared")
    rs = state.store()
    try:
        ranking = _ranking(rs.url, name, rs.version(name), int(top_trials), outliers)
    except SuspectsError as error:
        user_error(error)
        return
    raw = load_dataset(dataset.root, decisions=False)
    log = DecisionLog(raw.root)
    decision_history(log, key="suspects")
    latest = log.latest()
    marked = latest.by_path()
    flagged = sum(s.flagged for s in ranking)
    st.markdown(f"**{flagged}** of {len(ranking)} training images flagged by cleanlab; the most doubtful first.")
    choices: dict[str, str] = {}
    page = ranking[:int(shown)]
    for start in range(0, len(page), PER_ROW):
        for column, suspect in zip(st.columns(PER_ROW), page[start:start + PER_ROW]):
            with column:
                path = relative_path(raw, suspect.path)
                choices[path] = _card(name, suspect, raw.classes, _as_choice(marked.get(path)),
                                      key=f"decide-{name}-v{latest.version}-{suspect.rank}")
    if not st.button("Save decisions", type="primary", icon=":material/save:"):
        return
    # "undecided" where a mark was saved withdraws it: recording "fine" does that.
    changed = [_as_decision(path, choice) or Decision(path, Action.FINE)
               for path, choice in choices.items() if choice != _as_choice(marked.get(path))]
    if not changed:
        st.info("Nothing changed since the last save.")
        return
    try:
        saved = log.record(changed, raw, who=auth.user())
    except DecisionsError as error:
        user_error(error)
        return
    st.toast(f"Saved {plain(describe(saved))}. The next scan, split and sweep use it.", icon=":material/save:")
    st.rerun()
