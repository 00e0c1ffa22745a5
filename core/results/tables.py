"""Tables the Results page shows, as pure functions of run records and the trials table."""
from __future__ import annotations

import pandas as pd

from core.runs.records import TrialResult, param_columns


def compared_params(trials: pd.DataFrame) -> list[str]:
    """The swept parameters that took more than one value: the ones worth a chart axis."""
    return [p for p in param_columns(trials) if trials[p].nunique(dropna=True) > 1]


def fold_table(result: TrialResult) -> pd.DataFrame:
    """One row per CV fold: validation error, best epoch (1-based) and accuracy."""
    return pd.DataFrame([{"fold": f.fold + 1, "validation error": f.val_error, "best epoch": f.best_epoch + 1,
                          "accuracy": f.accuracy} for f in result.folds])


def trial_label(trials: pd.DataFrame, sweep: str, number: int, final_trial: int | None) -> str:
    """How a trial is named in a picker: its number, its error or state, and whether it made the final model."""
    row = trials[(trials["sweep"] == sweep) & (trials["number"] == number)].iloc[0]
    error = f"error {row['value']:.4f}" if pd.notna(row["value"]) else str(row["state"]).lower()
    return f"trial {number} · {error}" + (" · final model" if final_trial == number else "")
