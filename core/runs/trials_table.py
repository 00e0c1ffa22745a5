"""The trials table the charts and tables read: one row per trial record, in columns named once here
(a pandas DataFrame, the form Plotly and Streamlit take)."""
from __future__ import annotations

import pandas as pd

from core.runs.records import TrialRecord, TrialState

TRIAL_COLUMNS: dict[str, str] = {
    "sweep": "str: name of the sweep the trial belongs to",
    "number": "int: trial number within its sweep",
    "state": "str: a TrialState value",
    "value": "float: mean validation error over the CV folds (NaN until the trial completes)",
    "value_std": "float: standard deviation of the fold errors",
    "fold_errors": "list[float]: validation error of each fold",
    "duration_s": "float: wall-clock seconds",
    "cache": 'str: where the frozen activations came from ("hit", "miss", "off"; "" before a result)',
    "error": "str: why the trial failed (empty otherwise)",
}
"""The trials table the store hands to the charts: one row per trial, these columns, plus one column
per swept hyperparameter named exactly as the parameter (`trainable_layers`, `optimizer`, ...)."""


def trials_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """The trials table of `TRIAL_COLUMNS` (plus the swept parameters) from trial records."""
    rows = []
    for t in records:
        result = t.result
        rows.append({"sweep": t.sweep, "number": t.number, "state": t.state.value,
                     "value": t.value if t.state == TrialState.COMPLETE else None,
                     "value_std": result.value_std if result else None,
                     "fold_errors": [f.val_error for f in result.folds] if result else [],
                     **t.params, "duration_s": t.duration_s, "cache": result.cache if result else "",
                     "error": t.error})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(TRIAL_COLUMNS))


def param_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table: everything that is not a TRIAL_COLUMNS field."""
    return [c for c in trials.columns if c not in TRIAL_COLUMNS]
