"""Which swept parameters the validation error depends on: Optuna's importance evaluators over the
completed trials of a trials table, and their horizontal bar chart in the house style.

The trials table (not the stored study) goes in, so the Results page's selection of one or several
sweeps is what is measured; each parameter's distribution is read off the values it took.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.results.chart_style import LOG_SPAN, colour, label, styled
from core.results.tables import compared_params

EVALUATORS = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA", "mean_decrease_impurity": "mean decrease impurity"}
MIN_TRIALS = 3
SEED = 0


class ImportanceUnavailable(ValueError):
    """Too few completed trials or varied parameters to say anything; the message says which."""


def _distribution(values: pd.Series):
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return CategoricalDistribution(sorted({str(v) for v in values}))
    low, high = float(values.min()), float(values.max())
    return FloatDistribution(low, high, log=low > 0 and high / low >= LOG_SPAN)


def _param_value(distribution, value) -> str | float:
    from optuna.distributions import CategoricalDistribution
    return str(value) if isinstance(distribution, CategoricalDistribution) else float(value)


def _evaluator(name: str):
    from optuna import importance
    makers = {"fanova": lambda: importance.FanovaImportanceEvaluator(seed=SEED),
              "ped_anova": importance.PedAnovaImportanceEvaluator,
              "mean_decrease_impurity": lambda: importance.MeanDecreaseImpurityImportanceEvaluator(seed=SEED)}
    if name not in makers:
        raise ValueError(f"unknown importance evaluator {name!r}; choose one of {', '.join(EVALUATORS)}")
    return makers[name]()


def param_importances(trials: pd.DataFrame, evaluator: str = "fanova") -> pd.Series:
    """Each varied parameter's share of the validation error's variation (summing to 1), largest first.

    Only completed trials count, and only parameters every one of them has (several sweeps may differ).
    """
    import optuna
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    params = [p for p in compared_params(done) if done[p].notna().all()]
    if len(done) < MIN_TRIALS:
        raise ImportanceUnavailable(f"parameter importance needs {MIN_TRIALS} completed trials or more; "
                                    f"there {'is' if len(done) == 1 else 'are'} {len(done)}")
    if len(params) < 2:
        only = f"only {label(params[0])} varies" if params else "no parameter varies"
        raise ImportanceUnavailable(f"parameter importance ranks two or more varied parameters; {only} over "
                                    "the completed trials")
    distributions = {p: _distribution(done[p]) for p in params}
    study = optuna.create_study(direction="minimize")
    study.add_trials([optuna.trial.create_trial(
        params={p: _param_value(distributions[p], row[p]) for p in params}, distributions=distributions,
        value=float(row["value"])) for _, row in done.iterrows()])
    found = optuna.importance.get_param_importances(study, evaluator=_evaluator(evaluator), params=params)
    return pd.Series(found, dtype=float).sort_values(ascending=False)


def importance_chart(importances: pd.Series, evaluator: str = "fanova") -> go.Figure:
    """Horizontal bars, the most important parameter on top."""
    shown = importances.sort_values()
    fig = go.Figure(go.Bar(x=shown.to_numpy(), y=[label(p) for p in shown.index], orientation="h",
                           marker_color=colour(0), text=[f"{v:.0%}" for v in shown], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(range=[0, float(shown.max()) * 1.2], tickformat=".0%")
    fig.update_layout(height=max(260, 80 + 48 * len(shown)))
    return styled(fig, f"Parameter importance ({EVALUATORS[evaluator]})",
                  "share of the error's variation", None)
