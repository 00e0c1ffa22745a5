"""The one look of every Transfer Lab figure: palette, axis titles, template, and how parameters map to axes.

Kept apart from `charts.py` so that each builder there only says what it draws; a colour or a title
changes here, once, for every page and every exported PNG.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from core.runs.records import TrialState
from core.spec.fields import field_label

# Okabe & Ito's colour-blind-safe qualitative palette (black left out: it reads as an axis), then
# CARTO "Safe" for datasets with more classes. Class index i is always drawn in PALETTE[i % len].
PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933", "#882255",
)
STATE_COLOURS: dict[TrialState, str] = {
    TrialState.COMPLETE: "#009E73", TrialState.RUNNING: "#0072B2", TrialState.WAITING: "#999999",
    TrialState.PRUNED: "#E69F00", TrialState.FAIL: "#D55E00",
}
ERROR_COLORSCALE = "Viridis"      # perceptually uniform and colour-blind safe; used for every error colour bar
PARAM_COLORSCALE = "Plasma"       # a hyperparameter as marker colour: distinct from the error scale
CONFUSION_COLORSCALE = "Blues"

ERROR_TITLE = "validation error (mean of folds)"
AXIS_TITLES: dict[str, str] = {
    "value": ERROR_TITLE, "value_std": "spread of fold errors (std)", "number": "trial number",
    "duration_s": "duration (s)", "epoch": "epoch", "class": "class", "images": "images",
    "width": "width (px)", "height": "height (px)", "true": "true class", "predicted": "predicted class",
    "precision": "precision", "recall": "recall", "k": "k", "top_k": "top-k accuracy",
    "loss": "loss", "accuracy": "accuracy", "state": "state",
}
# Numeric parameters spanning this ratio or more (learning rates) are drawn on a log10 scale.
LOG_SPAN = 100.0
# Up to this many distinct values, ticks sit exactly on the values tried (a grid reads as a grid).
MAX_EXACT_TICKS = 12


def label(name: str) -> str:
    """The human title of a parameter or a quantity, the same on every chart."""
    return AXIS_TITLES.get(name) or field_label(name)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _template() -> go.layout.Template:
    template = go.layout.Template(pio.templates["plotly_white"])
    axis = dict(showline=True, linecolor="#888888", ticks="outside", zeroline=False, gridcolor="#EBEBEB")
    template.layout.update(
        font=dict(family="Inter, 'Source Sans Pro', Helvetica, Arial, sans-serif", size=13, color="#262730"),
        colorway=list(PALETTE), title=dict(x=0.0, xref="paper", xanchor="left", font=dict(size=16)),
        margin=dict(l=64, r=24, t=56, b=56), hovermode="closest", xaxis=axis, yaxis=axis,
        legend=dict(bgcolor="rgba(255,255,255,0.6)"),
    )
    return template


TEMPLATE = _template()


def styled(fig: go.Figure, title: str = "", x: str | None = None, y: str | None = None) -> go.Figure:
    """Apply the house template, a title and (2-D) axis titles; every builder ends here."""
    fig.update_layout(template=TEMPLATE, title_text=title)
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


def empty_figure(message: str) -> go.Figure:
    """A blank chart that says why it is blank (no trials yet...), so a page never shows a broken figure."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=15, color="#888888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return styled(fig)


def format_value(value: Any) -> str:
    """Short, exact text for a parameter value: 0.001, 64, Nadam."""
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class AxisEncoding:
    """Where each parameter value sits on a numeric axis, and the ticks that name those places."""

    coords: np.ndarray
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None
    categorical: bool = False

    def ticks(self) -> dict[str, list]:
        return {} if self.tickvals is None else {"tickvals": self.tickvals, "ticktext": self.ticktext}

    def axis(self, title: str) -> dict[str, Any]:
        return {"title": {"text": title}, **self.ticks()}


def encode(values: pd.Series) -> AxisEncoding:
    """Map a hyperparameter column to axis coordinates.

    Categories (optimizer names, booleans) become 0, 1, 2... in order of first appearance (the sweep's
    own order); numbers spanning two decades or more go on a log10 scale; ticks name the values tried.
    """
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        text = [format_value(v) if pd.notna(v) else None for v in values]
        categories = [c for c in pd.unique(pd.Series(text, dtype=object)) if c is not None]
        position = {c: float(i) for i, c in enumerate(categories)}
        coords = np.array([position.get(t, np.nan) for t in text], dtype=float)
        return AxisEncoding(coords, list(range(len(categories))), categories, categorical=True)
    raw = values.to_numpy(dtype=float)
    finite = np.unique(raw[np.isfinite(raw)])
    log = finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() >= LOG_SPAN
    coords = np.log10(raw) if log else raw
    if finite.size == 0 or finite.size > MAX_EXACT_TICKS:
        if not log:
            return AxisEncoding(coords)
        decades = np.arange(np.floor(np.log10(finite.min())), np.ceil(np.log10(finite.max())) + 1)
        return AxisEncoding(coords, decades.tolist(), [f"{10 ** d:g}" for d in decades])
    tickvals = np.log10(finite) if log else finite
    return AxisEncoding(coords, tickvals.tolist(), [format_value(v) for v in finite])
