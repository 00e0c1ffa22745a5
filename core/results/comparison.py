"""Backbones side by side (the ResNet101 report compared it with VGG): per backbone, its best trial's CV
error and spread, test accuracy, size, speed and memory, as a table and a chart. Pure: run records in,
a DataFrame or a plotly figure out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.results.chart_style import colour, empty_figure, styled
from core.runs.records import FinalModel, TrialRecord, ranked

BACKBONE = "backbone"
CV_ERROR, FOLD_STD, TRIAL_SPREAD = "best CV error", "fold std", "spread over trials"
TEST_ACCURACY = "test accuracy"
PARAMETERS, TRAINED = "parameters", "trained parameters"
SECONDS_PER_EPOCH, IMAGES_PER_S, PEAK_MB = "s / epoch", "backbone images/s", "peak memory (MB)"
COLUMNS = [BACKBONE, "completed trials", "best trial", CV_ERROR, FOLD_STD, TRIAL_SPREAD, TEST_ACCURACY,
           PARAMETERS, TRAINED, SECONDS_PER_EPOCH, IMAGES_PER_S, PEAK_MB]
CHARTED = ((CV_ERROR, "best CV error (± fold std)"), (SECONDS_PER_EPOCH, "seconds per epoch"),
           (IMAGES_PER_S, "backbone pass, images/s"), (PEAK_MB, "peak memory (MB)"))


def backbone_of(trial: TrialRecord, default: str) -> str:
    """The trial's backbone: its swept value, else its sweep's (`default`)."""
    return str(trial.params.get(BACKBONE, default))


def _measured(values: list[float]) -> list[float]:
    """Figures actually measured: 0 stands for "not recorded" (trials run before they were)."""
    return [v for v in values if v > 0]


def _epochs_run(trial: TrialRecord) -> int:
    return sum(len(f.curves.get("loss", [])) for f in trial.result.folds)


def _row(backbone: str, trials: list[TrialRecord], finals: dict[str, FinalModel | None]) -> dict:
    done = [t for t in ranked(trials) if t.result]
    row: dict = {BACKBONE: backbone, "completed trials": len(done)}
    if not done:
        return row
    best = done[0]
    final = finals.get(best.sweep)
    epochs = sum(_epochs_run(t) for t in done)
    rates, peaks = (_measured([getattr(t.result, k) for t in done]) for k in ("backbone_images_per_s",
                                                                               "peak_memory_mb"))
    return row | {
        "best trial": f"{best.sweep} #{best.number}", CV_ERROR: best.value, FOLD_STD: best.result.value_std,
        TRIAL_SPREAD: float(np.std([t.value for t in done])) if len(done) > 1 else np.nan,
        TEST_ACCURACY: final.test_accuracy if final and final.trial == best.number else np.nan,
        PARAMETERS: best.result.params_total or np.nan, TRAINED: best.result.params_trained or np.nan,
        SECONDS_PER_EPOCH: sum(t.result.duration_s for t in done) / epochs if epochs else np.nan,
        # The slowest pass is the full one to the lowest cut; later trials run only short segments.
        IMAGES_PER_S: min(rates) if rates else np.nan, PEAK_MB: max(peaks) if peaks else np.nan,
    }


def backbone_comparison(trials: list[TrialRecord], backbones: dict[str, str],
                        finals: dict[str, FinalModel | None]) -> pd.DataFrame:
    """One row per backbone (`COLUMNS`), best CV error first; NaN where a figure is not known.

    trials: the sweeps' trial records; backbones: each sweep's own backbone (for trials that do not sweep
    it); finals: each sweep's final model, whose test accuracy belongs to its backbone's best trial only
    when that trial is the one it was refit from.
    """
    groups: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        groups.setdefault(backbone_of(trial, backbones[trial.sweep]), []).append(trial)
    rows = [_row(name, group, finals) for name, group in groups.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(CV_ERROR, na_position="last", kind="stable").reset_index(drop=True)


def comparison_chart(frame: pd.DataFrame) -> go.Figure:
    """Four panels, one bar per backbone in the same colour throughout: error, epoch time, pass speed,
    memory. A figure not known for a backbone leaves its bar out."""
    if frame[CV_ERROR].isna().all():
        return empty_figure("no backbone has a completed trial yet")
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in CHARTED],
                        horizontal_spacing=0.12, vertical_spacing=0.18)
    names = frame[BACKBONE].tolist()
    for panel, (column, title) in enumerate(CHARTED):
        spread = frame[FOLD_STD].tolist() if column == CV_ERROR else None
        error_y = dict(type="data", array=spread, visible=True) if spread else None
        fig.add_trace(go.Bar(x=names, y=frame[column].tolist(), error_y=error_y, name=title, showlegend=False,
                             marker_color=[colour(i) for i in range(len(names))],
                             hovertemplate="%{x}: %{y:.4g}<extra>" + title + "</extra>"),
                      row=panel // 2 + 1, col=panel % 2 + 1)
    fig.update_xaxes(type="category")
    fig.update_layout(height=640, margin=dict(t=100))
    return styled(fig, "Backbones side by side")


_FORMATS = {CV_ERROR: "{:.4f}", FOLD_STD: "{:.4f}", TRIAL_SPREAD: "{:.4f}", TEST_ACCURACY: "{:.4f}",
            PARAMETERS: "{:,.0f}", TRAINED: "{:,.0f}", SECONDS_PER_EPOCH: "{:.2f}", IMAGES_PER_S: "{:,.0f}",
            PEAK_MB: "{:,.0f}"}


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as a page shows it: figures rounded, "-" where one is not known."""
    shown = frame.copy()
    for column, pattern in _FORMATS.items():
        shown[column] = [pattern.format(v) if pd.notna(v) else "-" for v in frame[column]]
    shown["best trial"] = shown["best trial"].fillna("-")
    return shown
