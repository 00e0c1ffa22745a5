"""Tables the Results page shows, as pure functions of run records and the trials table."""
from __future__ import annotations

from numbers import Number

import pandas as pd

from core.results.chart_style import format_value, label
from core.runs.evaluation import Evaluation
from core.runs.records import TrialResult
from core.runs.trials_table import param_columns


def compared_params(trials: pd.DataFrame) -> list[str]:
    """The swept parameters that took more than one value: the ones worth a chart axis."""
    return [p for p in param_columns(trials) if trials[p].nunique(dropna=True) > 1]


def mixed_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each column that mixes numbers and text (a swept dense_units: 256 and "512 128") as
    text, which Arrow, and so a Streamlit table, can hold."""
    mixed = [c for c in frame.columns if _mixes_numbers_and_text(frame[c])]
    return frame.assign(**{c: frame[c].map(lambda v: None if pd.isna(v) else format_value(v)) for c in mixed})


def _mixes_numbers_and_text(values: pd.Series) -> bool:
    kinds = {type(v) for v in values.dropna()} if values.dtype == object else set()
    return str in kinds and any(issubclass(k, Number) and k is not bool for k in kinds)


ERROR_DIGITS = 3           # an error or accuracy as a table shows it: 0.071
TRIAL_HEADERS = {"number": "trial", "value": "CV error", "value_std": "± std", "fold_errors": "fold errors",
                 "duration_s": "duration (s)", "cache": "activation cache", "error": "why it failed"}
"""The trials table's columns (`trials_table.TRIAL_COLUMNS`) as the Results page names them; a parameter
column takes its form label."""


def trials_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table as people read it: human headers, errors rounded, each trial's fold errors as one
    short text, seconds to a tenth, states in lower case."""
    shown = trials.assign(
        state=trials["state"].str.lower(), value=trials["value"].astype(float).round(ERROR_DIGITS),
        value_std=trials["value_std"].astype(float).round(ERROR_DIGITS),
        fold_errors=trials["fold_errors"].map(lambda errors: ", ".join(f"{e:.{ERROR_DIGITS}f}" for e in errors)),
        duration_s=trials["duration_s"].astype(float).round(1))
    return shown.rename(columns=TRIAL_HEADERS | {p: label(p) for p in param_columns(trials)})


def fold_table(result: TrialResult) -> pd.DataFrame:
    """One row per CV fold: validation error, best epoch (1-based) and accuracy, rounded."""
    return pd.DataFrame([{"fold": f.fold + 1, "validation error": round(f.val_error, ERROR_DIGITS),
                          "best epoch": f.best_epoch + 1, "accuracy": round(f.accuracy, ERROR_DIGITS)}
                         for f in result.folds])


def trial_label(trials: pd.DataFrame, sweep: str, number: int, final_trial: int | None) -> str:
    """How a trial is named in a picker: its number, its error or state, and whether it made the final model."""
    row = trials[(trials["sweep"] == sweep) & (trials["number"] == number)].iloc[0]
    error = f"error {row['value']:.4f}" if pd.notna(row["value"]) else str(row["state"]).lower()
    return f"trial {number} · {error}" + (" · final model" if final_trial == number else "")


def common_test_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Final models of several sweeps (sweep -> `FinalModel.evaluation("test")`) on the test images they all
    hold, judged by the labels of the last sweep given (a sweep run after cleaning corrects some): the fair
    before / after comparison, since cleaning never moves an image between train and test."""
    if any(ev.paths is None for ev in evaluations.values()):
        raise ValueError("a final model's test record keeps no image paths, so test images cannot be matched")
    common = set.intersection(*(set(ev.paths) for ev in evaluations.values()))
    judge = list(evaluations.values())[-1]
    truth = {p: judge.classes[y] for p, y in zip(judge.paths, judge.y_true) if p in common}
    rows = []
    for name, ev in evaluations.items():
        predicted = {p: ev.classes[s.argmax()] for p, s in zip(ev.paths, ev.scores) if p in common}
        rows.append({"sweep": name, "own test images": len(ev.paths), "own test accuracy": ev.accuracy(),
                     "common test images": len(common),
                     "accuracy on the common images": (float(sum(predicted[p] == truth[p] for p in common)
                                                            / len(common)) if common else float("nan"))})
    return pd.DataFrame(rows)
