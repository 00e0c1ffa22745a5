"""Views of one evaluation record (the final model's test split, or its train part: the refit's own fit, or
without a refit the out-of-fold scores): confusion matrix with clickable cells, classification report,
precision-recall with a threshold, top-k, worst errors."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.results import charts
from core.results.calibration import calibrate
from core.runs.evaluation import Evaluation
from core.runs.records import FinalModel, OutOfFold
from ui.confusion_cells import clickable_confusion
from ui.state import store
from ui.widgets import chart, image_grid, plain, table

TRAIN_OUT_OF_FOLD = "out-of-fold (train)"
TRAIN_FIT = "train (the refit's own fit)"


def _threshold(ev: Evaluation, key: str) -> tuple[int, float]:
    """(class, threshold) of the slider: binary decides for the positive class; else one class vs rest."""
    if ev.is_binary:
        c = ev.positive_class
        st.caption(f"Positive class: **{plain(ev.classes[c])}**")
    else:
        c = st.selectbox("Class (one vs rest)", range(ev.n_classes), format_func=lambda i: ev.classes[i],
                         key=f"{key}-class")
    t = st.slider("Decision threshold", 0.0, 1.0, 0.5, 0.01, key=f"{key}-threshold",
                  help="an image counts as the class when its score is at least this")
    return c, t


def _worst_errors(ev: Evaluation, threshold: float | None, key: str) -> None:
    k = st.slider("Worst errors per kind", 1, 10, 5, key=f"{key}-worst")
    worst = ev.worst_errors(k, threshold)
    if worst.empty:
        st.success("No errors on this split.")
        return
    for kind, group in worst.groupby("kind", sort=False):
        st.markdown(f"**{plain(kind)}**")
        if ev.paths is None:
            st.dataframe(group[["true", "predicted", "score"]], hide_index=True)
            continue
        image_grid(group["path"].tolist(), [f"{row.true} → {row.predicted} · {row.score:.2f}"
                                            for row in group.itertuples()], side=112)


def final_headline(final: FinalModel, name: str) -> None:
    """One line for the top of the Results page: the final model's test accuracy, its interval and image count,
    beside the cross-validated estimate of the trial it was made from."""
    test = final.evaluation("test")
    accuracy = test.accuracy_text() if test else f"{final.test_accuracy:.1%}"
    st.caption(f"**{plain(name)}**: final model's test accuracy {accuracy}; "
               f"cross-validated error {final.cv_error:.3f} (trial {final.trial}).")
    if final.why:
        st.caption(f"Why trial {final.trial}: {plain(final.why)}.")


def train_split_label(final: FinalModel) -> str:
    """What the final model's train evaluation holds: without a refit (variants, none of them the single
    refit), the trial's out-of-fold scores, each image scored by the fold model that never saw it."""
    refit = not final.variants or any(v.name == "single" for v in final.variants)
    return TRAIN_FIT if refit else TRAIN_OUT_OF_FOLD


def headline(ev: Evaluation, split: str) -> None:
    """The split's accuracy, always with its image count and 95% interval, and the other headline numbers."""
    cols = st.columns(4)
    cols[0].metric("Accuracy", f"{ev.accuracy():.1%}")
    cols[1].metric("Top-2 accuracy", f"{ev.top_k_accuracy(min(2, ev.n_classes)):.1%}")
    cols[2].metric("Macro F1", f"{ev.report().at['macro avg', 'f1']:.3f}")
    cols[3].metric("Images", len(ev.y_true))
    st.caption(f"Accuracy on the {split} split: {ev.accuracy_text()} (Wilson interval: what so few images "
               "can tell about the accuracy on new ones).")


def calibration_view(ev: Evaluation, oof: OutOfFold | None, split: str, key: str) -> None:
    """The reliability diagram of the split, before and after temperature scaling fitted on the trial's
    out-of-fold scores (images no fold model saw), with the ECE of each."""
    with st.expander("Calibration: is a 90% answer right 90% of the time?"):
        if oof is None or oof.classes != ev.classes:
            st.caption("This trial kept no out-of-fold scores, so no temperature can be fitted.")
            return
        report = calibrate(oof.scores, oof.labels, ev.scores, ev.y_true)
        st.caption(f"Expected calibration error (ECE) on the {split} split: {report.before.ece:.3f} as the model "
                   f"says, {report.after.ece:.3f} after temperature scaling (T = {report.temperature:.2f}, fitted "
                   "on the out-of-fold scores; it changes no decision).")
        chart(charts.reliability_diagram({"as the model says": report.before,
                                          f"temperature {report.temperature:.2f}": report.after}), f"{key} reliability")


def evaluation_views(record: FinalModel, name: str) -> None:
    """Everything about the final model of one sweep; `record` is `RunStore.final(name)` (local model paths)."""
    train = train_split_label(record)
    choice = st.segmented_control("Split", ["test", train], default="test", key=f"{name}-split") or "test"
    split = "test" if choice == "test" else "train"
    ev = record.evaluation(split)
    if ev is None:
        st.info(f"This final model keeps no {choice} evaluation.")
        return
    key = f"{name}-{split}"
    headline(ev, choice)
    calibration_view(ev, store().oof(name, record.trial), choice, key)

    left, right = st.columns(2)
    with right:
        c, t = _threshold(ev, key)
        point = ev.at_threshold(c, t)
        sub = st.columns(3)
        sub[0].metric("Precision", f"{point['precision']:.3f}")
        sub[1].metric("Recall", f"{point['recall']:.3f}")
        sub[2].metric("F1", f"{point['f1']:.3f}")
        chart(charts.pr_curves(ev, threshold=t, class_index=None if ev.is_binary else c), f"{key} precision-recall")
        if not ev.is_binary:       # the class against the rest at the threshold: a two-class evaluation
            scores = ev.scores[:, c]
            versus = Evaluation(["rest", ev.classes[c]], ev.y_true == c, np.stack([1 - scores, scores], axis=1),
                                paths=ev.paths)
            clickable_confusion(versus, f"{ev.classes[c]} vs rest at {t:.2f}", f"{key}-versus", threshold=t,
                                model_path=record.model_path)
    threshold = t if ev.is_binary else None
    with left:
        title = f"Confusion matrix ({choice}" + (f", threshold {t:.2f})" if ev.is_binary else ")")
        clickable_confusion(ev, title, key, threshold, model_path=record.model_path)
    table(ev.report(threshold).round(4), f"{key} classification report", index=True)
    left, right = st.columns(2)
    with left:
        chart(charts.top_k_curve(ev), f"{key} top-k")
    with right:
        _worst_errors(ev, threshold, key)
