"""A confusion matrix whose cells click through to their images (fastai's `plot_top_losses` in spirit):
each with its scores, and on request the final model's Grad-CAM for the predicted class.

The same view serves the final model's test split and a trial's validation (out-of-fold) scores. Importing
this module is light: TensorFlow loads only when the Grad-CAM toggle is switched on.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.results import charts
from core.runs.evaluation import Evaluation
from core.runs.records import OutOfFold, TrialResult
from ui.widgets import chart, image_grid, plain

MAX_CELL_IMAGES = 48
CELL_SIDE = 160            # px of each image: room for its scores under it
MAX_HEAT_MAPS = 8          # Grad-CAM costs a backward pass per image: the first few of the cell


def clickable_confusion(ev: Evaluation, title: str, key: str, threshold: float | None = None,
                        model_path: str | None = None) -> None:
    """The confusion matrix of `ev` and, under it, the images of the cell clicked last. `model_path`: the
    final model, whose Grad-CAM a toggle overlays (None: no toggle)."""
    selection = chart(charts.confusion_matrix(ev.confusion(threshold), ev.classes, title=title), f"{key} confusion",
                      selectable=True)
    points = getattr(getattr(selection, "selection", None), "points", None) or []
    cells = [cell for cell in map(charts.confusion_cell, points) if cell]
    if cells:
        cell_images(ev, cells[-1], key, threshold, model_path)
    else:
        st.caption("Click a cell of the confusion matrix to see its images.")


def cell_images(ev: Evaluation, cell: tuple[int, int], key: str, threshold: float | None = None,
                model_path: str | None = None) -> None:
    """The images of one confusion cell (true, predicted) with their scores, and a Grad-CAM toggle."""
    true, pred = cell
    rows = ev.cell(true, pred, threshold)
    st.markdown(f"**True {plain(ev.classes[true])}, predicted {plain(ev.classes[pred])}**: "
                f"{len(rows)} image{'' if len(rows) == 1 else 's'}")
    if ev.paths is None:
        st.info("This record keeps no file paths, so its images cannot be shown.")
        return
    shown = rows[:MAX_CELL_IMAGES]
    if len(rows) > len(shown):
        st.caption(f"The first {len(shown)} of them.")
    image_grid([ev.paths[i] for i in shown], [_score_caption(ev, i, true, pred) for i in shown], side=CELL_SIDE)
    if shown and model_path and st.toggle("Grad-CAM", key=f"{key}-cell-cam",
                                          help="the final model's heat map for the predicted class: where it "
                                               f"sees {ev.classes[pred]} (the first {MAX_HEAT_MAPS} images)"):
        _heat_maps(Path(model_path), [ev.paths[i] for i in shown[:MAX_HEAT_MAPS]], ev.classes[pred])


def _score_caption(ev: Evaluation, row: int, true: int, pred: int) -> str:
    """The image's score for the predicted class, and for its true class when that is another."""
    scores = f"{ev.classes[pred]} {ev.scores[row, pred]:.2f}"
    if true != pred:
        scores += f" · {ev.classes[true]} {ev.scores[row, true]:.2f}"
    return f"{scores} · {Path(ev.paths[row]).name}"


def _heat_maps(model_path: Path, paths: list[str], class_name: str) -> None:
    """The final model's Grad-CAM of `class_name` over each image, or one line saying why there is none."""
    if not model_path.is_file():
        st.caption("No heat map: the final model's file is not on this server.")
        return
    from core.inference.explain import overlay
    from core.inference.predict import predict_images
    from ui.models import heatmap, loaded_model
    loaded = loaded_model(model_path)
    if loaded.card.get("kind", "network") != "network":
        st.caption(f"No heat map: the final model's head is a {plain(loaded.card.get('kind'))}, and Grad-CAM is "
                   "offered for network heads only.")
        return
    if class_name not in loaded.classes:
        st.caption(f"No heat map: the final model has no class '{plain(class_name)}'.")
        return
    images, captions = [], []
    with st.spinner("Grad-CAM…"):
        for prediction in predict_images(loaded, [(p, p) for p in paths], top_k=1):
            if prediction.error:
                continue
            cam = heatmap(model_path, loaded, prediction.image, loaded.classes.index(class_name), "gradcam")
            images.append(overlay(prediction.image, cam))
            captions.append(f"{Path(prediction.name).name}: where it sees {class_name}")
    if images:
        st.image(images, caption=[plain(c) for c in captions], width=CELL_SIDE)


def validation_confusion(result: TrialResult, oof: OutOfFold | None, key: str, model_path: str | None) -> None:
    """A trial's validation confusion over all its folds: from its out-of-fold scores (each training image
    scored by the fold model that never saw it), whose cells click through; from the folds' counts alone for
    a trial that kept no scores."""
    title = "Validation confusion (out-of-fold, all folds)"
    if oof is None:
        chart(charts.confusion_matrix(result.validation_confusion(), result.folds[0].classes, title=title),
              f"{key} validation confusion")
        st.caption("This trial kept no out-of-fold scores, so its cells cannot show their images.")
        return
    clickable_confusion(Evaluation(oof.classes, oof.labels, oof.scores, paths=oof.paths), title,
                        f"{key}-validation", model_path=model_path)
