"""Every figure of the app, as pure functions: plain data in, a plotly `go.Figure` out.

Pages only place these figures; tests call them without a browser. The shared look (palette, axis
titles, template, parameter encoding) lives in `chart_style`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.results.chart_style import (
    CONFUSION_COLORSCALE,
    ERROR_COLORSCALE,
    ERROR_TITLE,
    PARAM_COLORSCALE,
    STATE_COLOURS,
    colour,
    empty_figure,
    encode,
    format_value,
    label,
    styled,
)
from core.results.calibration import Reliability
from core.runs.evaluation import Evaluation
from core.runs.records import TrialState
from core.runs.trials_table import param_columns

NO_TRIALS = "no completed trials yet"


def completed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials with a final error, in trial order: the only ones an error chart may plot."""
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    return done.sort_values("number").reset_index(drop=True)


def _require_params(trials: pd.DataFrame, *names: str) -> None:
    missing = [n for n in names if n not in trials.columns]
    if missing:
        raise ValueError(f"trials have no column {missing}; hyperparameters present: {param_columns(trials)}")


def _trial_hover(trials: pd.DataFrame, params: list[str]) -> list[str]:
    """One hover text per trial: its number, parameters and error ± fold spread."""
    return [
        f"trial {row['number']}<br>"
        + "".join(f"{label(p)}: {format_value(row[p])}<br>" for p in params)
        + f"error {row['value']:.4f} ± {row.get('value_std', np.nan):.4f}"
        for _, row in trials.iterrows()
    ]


# --- dataset ---------------------------------------------------------------------------------------

def class_counts(counts: dict[str, int]) -> go.Figure:
    names, values = list(counts), list(counts.values())
    fig = go.Figure(go.Bar(x=names, y=values, text=values, textposition="outside",
                           marker_color=[colour(i) for i in range(len(names))]))
    fig.update_xaxes(type="category")
    return styled(fig, "Images per class", label("class"), label("images"))


def split_counts(table: pd.DataFrame) -> go.Figure:
    """Grouped bars, one group per class (rows), one bar per split (columns): is each split stratified?"""
    classes = [str(c) for c in table.index]
    fig = go.Figure([go.Bar(name=str(split), x=classes, y=table[split].tolist(), text=table[split].tolist(),
                            textposition="outside", marker_color=colour(j))
                     for j, split in enumerate(table.columns)])
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return styled(fig, "Images per class and split", label("class"), label("images"))


def image_sizes(sizes: list[tuple[str, int, int]], labels: list[str] | None = None) -> go.Figure:
    """Width x height per image, one colour per class: spots thumbnails, panoramas and outliers."""
    frame = pd.DataFrame(sizes, columns=["file", "width", "height"])
    if labels is not None and len(labels) != len(frame):
        raise ValueError(f"image_sizes got {len(labels)} labels for {len(frame)} images")
    frame["label"] = labels if labels is not None else "images"
    fig = go.Figure([go.Scatter(x=group["width"], y=group["height"], mode="markers", name=str(name),
                                text=group["file"], marker=dict(color=colour(i), size=7, opacity=0.7),
                                hovertemplate="%{text}<br>%{x} × %{y} px<extra></extra>")
                     for i, (name, group) in enumerate(frame.groupby("label", sort=True))])
    return styled(fig, "Image sizes", label("width"), label("height"))


# --- sweeps ----------------------------------------------------------------------------------------

def _grid_means(x: np.ndarray, y: np.ndarray, values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(xs, ys, z) with z[j, i] the mean error at (xs[i], ys[j]) when the trials cover the full grid, else None."""
    cells = pd.DataFrame({"x": x, "y": y, "v": values.to_numpy()}).dropna()
    means = cells.groupby(["x", "y"])["v"].mean()
    xs, ys = np.unique(cells["x"]), np.unique(cells["y"])
    if len(xs) < 2 or len(ys) < 2 or len(means) != len(xs) * len(ys):
        return None
    z = means.unstack("x").reindex(index=ys, columns=xs).to_numpy()
    return xs, ys, z


def error_surface_3d(trials: pd.DataFrame, x: str, y: str, color: str | None = None) -> go.Figure:
    """Validation error over two hyperparameters (the ResNet50V2 report's Figure 2).

    A full grid gets a surface of the mean error per cell; every trial is a marker with a vertical
    error bar of its fold spread (std). Categorical parameters sit at integer ticks named by value;
    `color` optionally colours the markers by a third parameter.
    """
    _require_params(trials, x, y, *([color] if color else []))
    done = completed_trials(trials)
    if done.empty:
        return empty_figure(NO_TRIALS)
    ex, ey = encode(done[x]), encode(done[y])
    grid = _grid_means(ex.coords, ey.coords, done["value"])
    fig = go.Figure()
    if grid is not None:
        xs, ys, z = grid
        fig.add_trace(go.Surface(x=xs, y=ys, z=z, name="mean error", colorscale=ERROR_COLORSCALE, opacity=0.8,
                                 showscale=color is None, colorbar=dict(title=dict(text="error")),
                                 hovertemplate="mean error %{z:.4f}<extra></extra>"))
    if color:
        ec = encode(done[color])
        marker = dict(color=ec.coords, colorscale=PARAM_COLORSCALE, showscale=True,
                      colorbar=dict(title=dict(text=label(color)), x=1.12, **ec.ticks()))
    elif grid is None:
        marker = dict(color=done["value"], colorscale=ERROR_COLORSCALE, showscale=True,
                      colorbar=dict(title=dict(text="error")))
    else:
        marker = dict(color="#262730")
    fig.add_trace(go.Scatter3d(
        x=ex.coords, y=ey.coords, z=done["value"], mode="markers", name="trials",
        marker=dict(size=4, **marker), text=_trial_hover(done, [x, y, *([color] if color else [])]),
        hovertemplate="%{text}<extra></extra>",
        error_z=dict(type="data", array=done["value_std"].fillna(0).to_numpy(), visible=True, color="#555555"),
    ))
    fig.update_layout(scene=dict(xaxis=ex.axis(label(x)), yaxis=ey.axis(label(y)),
                                 zaxis=dict(title=dict(text=ERROR_TITLE))),
                      scene_camera=dict(eye=dict(x=1.6, y=-1.6, z=0.9)))
    return styled(fig, f"Validation error over {label(x)} and {label(y)}")


def parallel_coordinates(trials: pd.DataFrame, params: list[str]) -> go.Figure:
    """One line per completed trial through its parameters to its error: which settings the good trials share."""
    _require_params(trials, *params)
    done = completed_trials(trials)
    if done.empty:
        return empty_figure(NO_TRIALS)
    dimensions = [dict(label=label(p), values=(e := encode(done[p])).coords, **e.ticks()) for p in params]
    dimensions.append(dict(label=ERROR_TITLE, values=done["value"]))
    low, high = float(done["value"].min()), float(done["value"].max())
    fig = go.Figure(go.Parcoords(dimensions=dimensions, labelside="bottom", line=dict(
        color=done["value"], colorscale=ERROR_COLORSCALE, cmin=low, cmax=high if high > low else low + 1e-6,
        showscale=high > low, colorbar=dict(title=dict(text="error")))))   # one error value: no colour bar
    # Axis titles below the axes (not under the figure title); room on the left for the first axis's ticks.
    fig.update_layout(margin=dict(l=110, r=40, t=70, b=70))
    return styled(fig, "Completed trials")


def error_vs_param(trials: pd.DataFrame, param: str) -> go.Figure:
    """Mean error per value of one parameter, over the (jittered) error of every fold: effect and noise together."""
    _require_params(trials, param)
    done = completed_trials(trials)
    if done.empty:
        return empty_figure(NO_TRIALS)
    enc = encode(done[param])
    folds = (done.assign(coord=enc.coords)[["number", "coord", "fold_errors"]]
             .explode("fold_errors").dropna(subset=["coord", "fold_errors"]))
    spread = np.diff(np.unique(enc.coords[np.isfinite(enc.coords)]))
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(folds)) * (spread.min() if spread.size else 1.0)
    means = done.assign(coord=enc.coords).groupby("coord")["value"].mean()
    fig = go.Figure([
        go.Scatter(x=folds["coord"].to_numpy(float) + jitter, y=folds["fold_errors"].to_numpy(float),
                   mode="markers", name="fold", customdata=folds["number"],
                   marker=dict(color=colour(4), size=6, opacity=0.55),
                   hovertemplate="trial %{customdata}<br>fold error %{y:.4f}<extra></extra>"),
        go.Scatter(x=means.index, y=means.to_numpy(), name="mean of folds",
                   mode="markers" if enc.categorical else "lines+markers",
                   marker=dict(color=colour(0), size=10), line=dict(color=colour(0), width=2),
                   hovertemplate="mean error %{y:.4f}<extra></extra>"),
    ])
    fig.update_xaxes(**enc.ticks())
    return styled(fig, f"Validation error by {label(param)}", label(param), ERROR_TITLE)


def trial_progress(trials: pd.DataFrame) -> go.Figure:
    """Live sweep view: each trial's error coloured by state with the best-so-far line above a strip of
    every trial's state (running and waiting trials have no error yet, but still show)."""
    if trials.empty:
        return empty_figure("no trials yet")
    trials = trials.sort_values("number")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.04)
    order = [s.value for s in TrialState]
    states = [s for s in order if s in set(trials["state"])] + sorted(set(trials["state"]) - set(order))
    for state in states:
        group = trials[trials["state"] == state]
        scored = group[group["value"].notna()]
        marker = dict(color=STATE_COLOURS.get(state, "#444444"), size=8)
        fig.add_trace(go.Scatter(x=scored["number"], y=scored["value"], mode="markers", marker=marker,
                                 legendgroup=state, showlegend=False, text=_trial_hover(scored, []),
                                 hovertemplate="%{text}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=group["number"], y=[state.lower()] * len(group), mode="markers",
                                 name=f"{state.lower()} ({len(group)})", legendgroup=state,
                                 marker=dict(marker, symbol="square"),
                                 hovertemplate="trial %{x}: %{y}<extra></extra>"), row=2, col=1)
    best = trials["value"].where(trials["state"] == "COMPLETE").cummin().ffill()
    fig.add_trace(go.Scatter(x=trials["number"], y=best, mode="lines", line_shape="hv", name="best so far",
                             line=dict(color="#262730", width=2)), row=1, col=1)
    fig.update_yaxes(title_text=ERROR_TITLE, rangemode="nonnegative", row=1, col=1)   # an error is never < 0
    if trials["value"].isna().all():
        fig.update_yaxes(range=[0, 1], row=1, col=1)   # nothing scored yet: an error axis, not plotly's -1..4
    fig.update_yaxes(type="category", row=2, col=1)
    fig.update_xaxes(title_text=label("number"), row=2, col=1)
    last = int(trials["number"].max())
    # Trial numbers are whole and start at 0: half a trial either side, not plotly's -1..1 around trial 0.
    fig.update_xaxes(range=[-0.5, last + 0.5], tick0=0, dtick=_integer_step(last))
    return styled(fig, "Sweep progress")


def _integer_step(largest: float, ticks: int = 10) -> int:
    """A whole tick step giving at most about `ticks` ticks from 0 to `largest`."""
    return max(1, int(np.ceil((largest if np.isfinite(largest) else 0) / ticks)))


# --- one trial -------------------------------------------------------------------------------------

def learning_curves(curves: dict[str, dict[str, list[float]]], fine_tune_epoch: int | None = None,
                    metric: str = "accuracy") -> go.Figure:
    """One metric per figure (call twice for loss and accuracy), so a page can lay them side by side.

    Per fold: training solid, validation (`val_<metric>`) dashed, one colour per fold. Epochs are numbered
    from 1; `fine_tune_epoch` is the number of epochs trained before the backbone was unfrozen, and the
    "fine-tuning begins" line is drawn between that epoch and the next. Left out, it is read from a staged
    trial's `stage` curve (1 in stage 1, 2 in stage 2).
    """
    fig = go.Figure()
    fine_tune_epoch = _stage_one_epochs(curves) if fine_tune_epoch is None else fine_tune_epoch
    for i, (fold, history) in enumerate(curves.items()):
        if metric not in history:
            raise ValueError(f"{fold} has no '{metric}' curve; it has {sorted(history)}")
        for key, dash, split in ((metric, "solid", "train"), (f"val_{metric}", "dash", "validation")):
            if key in history:
                values = history[key]
                fig.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=values, mode="lines",
                                         name=f"{fold} {split}", legendgroup=fold,
                                         line=dict(color=colour(i), dash=dash)))
    longest = max((len(h.get(metric, [])) for h in curves.values()), default=0)
    if fine_tune_epoch is not None:
        # The label on the side of the line with room for it, so the figure's edge never cuts it.
        side = "right" if fine_tune_epoch + 0.5 < longest / 2 else "left"
        fig.add_vline(x=fine_tune_epoch + 0.5, line_dash="dot", line_color="#555555",
                      annotation_text="fine-tuning begins", annotation_position=f"top {side}")
    fig.update_xaxes(rangemode="tozero", tick0=0, dtick=_integer_step(longest))   # epochs are whole
    return styled(fig, f"Learning curves: {label(metric)}", label("epoch"), label(metric))


def _stage_one_epochs(curves: dict[str, dict[str, list[float]]]) -> int | None:
    """How many epochs stage 1 of a staged trial ran (every fold runs them all), or None."""
    for history in curves.values():
        stages = history.get("stage", [])
        if 2 in stages:
            return stages.index(2)
    return None


def confusion_matrix(cm: np.ndarray, classes: list[str], normalize: bool = False, title: str = "") -> go.Figure:
    """Heatmap of counts (rows true, columns predicted); `normalize` colours by row share and prints both.

    A click anywhere in a cell selects it: plotly selects no heatmap cell, so each cell has an invisible
    square marker at its centre that takes the hover and the click (the heatmap takes none), and with no
    hover distance limit the nearest centre, the cell's own, answers. Its customdata is (true index,
    predicted index), which `confusion_cell` reads back; the selected cell gets an outline.
    """
    counts = np.asarray(cm)
    n = len(classes)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {n} classes")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        z = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
        text = [[f"{share:.0%}<br>({format_value(c)})" for share, c in zip(zr, cr)] for zr, cr in zip(z, counts)]
    else:
        z = counts
        text = [[format_value(c) for c in row] for row in counts]
    names = [str(c) for c in classes]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}",
                               colorscale=CONFUSION_COLORSCALE, showscale=False, hoverinfo="skip"))
    true_idx, pred_idx = (grid.ravel() for grid in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    fig.add_trace(go.Scatter(
        x=[names[j] for j in pred_idx], y=[names[i] for i in true_idx], mode="markers", name="cells",
        showlegend=False, customdata=np.stack([true_idx, pred_idx], axis=1).tolist(),   # lists: see confusion_cell
        text=[text[i][j] for i, j in zip(true_idx, pred_idx)],
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        marker=dict(size=max(12, 240 // n), symbol="square-open", opacity=0, color="#E69F00", line=dict(width=3)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=0))))
    fig.update_layout(hoverdistance=-1, clickmode="event+select")
    fig.update_xaxes(type="category", showgrid=False)
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False)
    return styled(fig, title or "Confusion matrix", label("predicted"), label("true"))


def confusion_cell(point: dict) -> tuple[int, int] | None:
    """(true, predicted) class indices of a point clicked on a `confusion_matrix` figure, if it is a cell.

    Its customdata comes back as a list, or, where the figure sent a numpy array (a typed array in the
    browser), as Streamlit serialises that: {"0": true, "1": predicted}.
    """
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data.get("0"), data.get("1")]
    if isinstance(data, (list, tuple)) and len(data) == 2 and all(isinstance(v, (int, float)) for v in data):
        return int(data[0]), int(data[1])
    return None


def pr_curves(evaluation: Evaluation, threshold: float | None = None, class_index: int | None = None) -> go.Figure:
    """One-vs-rest precision-recall per class (or the chosen one), AP in the legend, the slider's threshold marked."""
    indices = range(evaluation.n_classes) if class_index is None else [class_index]
    fig = go.Figure()
    for c in indices:
        name = evaluation.classes[c]
        precision, recall, thresholds = _pr_steps(*evaluation.pr_curve(c))
        fig.add_trace(go.Scatter(
            x=recall, y=precision, mode="lines", line=dict(color=colour(c), shape="hv"), legendgroup=name,
            name=f"{name} (AP {evaluation.average_precision(c):.2f})", customdata=thresholds,
            hovertemplate="threshold %{customdata:.3f}<br>recall %{x:.3f}<br>precision %{y:.3f}<extra></extra>"))
        if threshold is not None:
            point = evaluation.at_threshold(c, threshold)
            fig.add_trace(go.Scatter(
                x=[point["recall"]], y=[point["precision"]], mode="markers", legendgroup=name,
                name=f"{name} at {threshold:g}", showlegend=False,
                marker=dict(color=colour(c), size=13, symbol="circle-open", line=dict(width=3)),
                hovertemplate=f"threshold {threshold:g}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.05])
    return styled(fig, "Precision-recall (one class vs rest)", label("recall"), label("precision"))


def _pr_steps(precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's curve without the points whose recall the next, higher threshold already reaches: lowering
    the threshold there adds false positives only. sklearn lists them (the lowest threshold, every image
    called positive, sits at recall 1 and the base rate), and a step line drops to them vertically."""
    keep = np.append(recall[:-1] != recall[1:], True)
    return precision[keep], recall[keep], np.append(thresholds, np.nan)[keep]


def top_k_curve(evaluation: Evaluation) -> go.Figure:
    ks = np.arange(1, evaluation.n_classes + 1)
    accuracy = [evaluation.top_k_accuracy(int(k)) for k in ks]
    fig = go.Figure(go.Scatter(x=ks, y=accuracy, mode="lines+markers+text", text=[f"{a:.1%}" for a in accuracy],
                               textposition="bottom center", cliponaxis=False, line=dict(color=colour(0)),
                               name="top-k accuracy"))
    fig.update_xaxes(tickvals=ks.tolist(), range=[0.5, len(ks) + 0.5])   # room for the first and last labels
    fig.update_yaxes(range=[0, 1.05])
    return styled(fig, "Top-k accuracy", label("k"), label("top_k"))


def reliability_diagram(tables: dict[str, Reliability]) -> go.Figure:
    """Accuracy against confidence per bin, one line per table (e.g. before / after temperature scaling),
    beside the diagonal a calibrated model follows; each legend entry carries its ECE, marker size its images."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line=dict(color="#888888", dash="dash")))
    for index, (name, table) in enumerate(tables.items()):
        held = table.counts > 0
        sizes = 6 + 18 * np.sqrt(table.counts[held] / table.counts.max())
        fig.add_trace(go.Scatter(x=table.confidence[held], y=table.accuracy[held], mode="lines+markers",
                                 name=f"{name} (ECE {table.ece:.3f})", line=dict(color=colour(index)),
                                 marker=dict(size=sizes), customdata=table.counts[held],
                                 hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} images"))
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.02])
    return styled(fig, "Reliability: is a 90% answer right 90% of the time?", "confidence (top probability)",
                  "accuracy")


# --- export ----------------------------------------------------------------------------------------

def fig_to_png(fig: go.Figure, width: int = 900, height: int = 600, scale: float = 2.0) -> bytes:
    """PNG bytes of a figure, for reports and downloads.

    kaleido 1.x renders in a headless Chrome/Chromium, found on PATH (`chromium`, `google-chrome`...)
    or at the path in the BROWSER_PATH environment variable. MathJax is switched off because kaleido
    would otherwise fetch it from a CDN, and these machines have no internet.
    """
    import kaleido  # lazy: only export needs it
    from kaleido.errors import ChromeNotFoundError

    try:
        return kaleido.calc_fig_sync(fig, opts=dict(format="png", width=width, height=height, scale=scale),
                                     kopts=dict(mathjax=False))
    except ChromeNotFoundError as exc:
        raise RuntimeError("PNG export needs Chrome or Chromium: install Debian's `chromium` package "
                           "or set BROWSER_PATH to a Chrome/Chromium binary") from exc
