"""Backbones side by side and parameter importance, from a tiny real sweep over two backbones (SQLite
store, weights none, 32 px) run in-process and refit, then shown on the Results page in AppTest."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from apptest import no_errors, page
from conftest import write_class_folders

from core.results.comparison import (
    COLUMNS,
    CV_ERROR,
    FOLD_STD,
    IMAGES_PER_S,
    PARAMETERS,
    PEAK_MB,
    SECONDS_PER_EPOCH,
    TEST_ACCURACY,
    TRAINED,
    TRIAL_SPREAD,
    backbone_comparison,
    comparison_chart,
    formatted,
)
from core.results.importance import ImportanceUnavailable, importance_chart, param_importances
from core.runs.store import RunStore
from core.spec.sweep import SweepSpec

SWEEP = "two-backbones"
BACKBONES = ["mobilenetv2", "efficientnet_lite0"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStore]:
    """The sweep run and refit in a store and data root of this module's own (the app reads them too).
    72 images: the backbone pass to the cache takes three batches, so its speed can be timed."""
    from core.search.refit import finalize
    from core.search.worker import run_worker
    home = tmp_path_factory.mktemp("comparison")
    dataset = write_class_folders(home / "data" / "colours24", per_class=24)
    saved = {k: os.environ.get(k) for k in ("TRANSFERLAB_DATA_ROOTS", "TRANSFERLAB_STORAGE", "TRANSFERLAB_CACHE")}
    os.environ.update(TRANSFERLAB_DATA_ROOTS=str(home / "data"), TRANSFERLAB_STORAGE=f"sqlite:///{home / 'runs.db'}",
                      TRANSFERLAB_CACHE=str(home / "cache"))     # a cold activation cache: every backbone passes
    try:
        store = RunStore(os.environ["TRANSFERLAB_STORAGE"], artifacts_dir=home / "artifacts")
        store.create_sweep(SweepSpec.from_dict({
            "name": SWEEP, "folds": 2, "data": {"dataset": str(dataset), "test_fraction": 0.25},
            "params": {"weights": "none", "image_size": 32, "epochs": 2, "batch_size": 8, "early_stopping": 0,
                       "reduce_lr": 0},
            "search": {"method": "grid", "space": {"backbone": BACKBONES, "learning_rate": [0.01, 0.001]}}}))
        assert run_worker(store, SWEEP) == 4
        assert finalize(store, SWEEP)
        yield store
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def comparison(store: RunStore) -> pd.DataFrame:
    return backbone_comparison(store.trials(SWEEP), {SWEEP: store.spec(SWEEP).params.backbone},
                               {SWEEP: store.final(SWEEP)})


def test_the_table_has_a_row_per_backbone_with_its_best_trial_and_costs(swept: RunStore) -> None:
    from core.models.classifier import build_classifier
    frame = comparison(swept)
    assert list(frame.columns) == COLUMNS and sorted(frame["backbone"]) == sorted(BACKBONES)
    assert frame[CV_ERROR].is_monotonic_increasing
    final, spec = swept.final(SWEEP), swept.spec(SWEEP)
    for _, row in frame.iterrows():
        trials = [t for t in swept.trials(SWEEP) if t.params["backbone"] == row["backbone"]]
        best = min(trials, key=lambda t: t.value)
        assert row["completed trials"] == 2 and row["best trial"] == f"{SWEEP} #{best.number}"
        assert row[CV_ERROR] == pytest.approx(best.value) and row[FOLD_STD] == pytest.approx(best.result.value_std)
        assert row[TRIAL_SPREAD] == pytest.approx(np.std([t.value for t in trials]))
        if best.number == final.trial:
            assert row[TEST_ACCURACY] == pytest.approx(final.test_accuracy)
        else:
            assert np.isnan(row[TEST_ACCURACY])
        model = build_classifier(spec.trial_params(best.params), 3).model
        assert row[PARAMETERS] == model.count_params()
        assert row[TRAINED] == sum(int(np.prod(w.shape)) for w in model.trainable_weights) < row[PARAMETERS]
        epochs = sum(len(f.curves["loss"]) for t in trials for f in t.result.folds)
        assert row[SECONDS_PER_EPOCH] == pytest.approx(sum(t.result.duration_s for t in trials) / epochs)
        assert row[IMAGES_PER_S] > 0 and row[PEAK_MB] > 0
    assert frame[TEST_ACCURACY].notna().sum() == 1          # the final model is one backbone's best trial
    assert frame[PARAMETERS].nunique() == 2
    shown = formatted(frame)
    assert (shown[TEST_ACCURACY] == "-").sum() == 1 and not shown.isna().any().any()


def test_a_trial_recorded_before_its_costs_were_shows_not_known(swept: RunStore) -> None:
    """Results written by an older version have no cost fields: "-" in the table, not 0."""
    import dataclasses
    trials = [dataclasses.replace(t, result=type(t.result).from_json(
        {k: v for k, v in t.result.to_json().items() if k in ("folds", "cache", "cut", "duration_s")}))
        for t in swept.trials(SWEEP)]
    frame = backbone_comparison(trials, {SWEEP: "mobilenetv2"}, {SWEEP: None})
    assert frame[[PARAMETERS, TRAINED, IMAGES_PER_S, PEAK_MB, TEST_ACCURACY]].isna().all().all()
    assert (formatted(frame)[PEAK_MB] == "-").all()


def test_the_chart_draws_each_figure_per_backbone(swept: RunStore) -> None:
    frame = comparison(swept)
    fig = comparison_chart(frame)
    assert len(fig.data) == 4 and all(list(bar.x) == frame["backbone"].tolist() for bar in fig.data)
    assert list(fig.data[0].error_y.array) == pytest.approx(frame[FOLD_STD].tolist())
    assert fig.layout.template.layout.colorway       # the house template


def test_importance_ranks_the_swept_parameters(swept: RunStore) -> None:
    trials = swept.trials_frame(SWEEP)
    for evaluator in ("fanova", "ped_anova", "mean_decrease_impurity"):
        found = param_importances(trials, evaluator)
        assert set(found.index) == {"backbone", "learning_rate"}, evaluator
        assert found.sum() == pytest.approx(1.0) and (found >= 0).all() and found.is_monotonic_decreasing
    fig = importance_chart(param_importances(trials))
    assert fig.data[0].orientation == "h" and "fANOVA" in fig.layout.title.text


def test_importance_says_why_it_has_nothing_to_say(swept: RunStore) -> None:
    trials = swept.trials_frame(SWEEP)
    with pytest.raises(ImportanceUnavailable, match="needs 3 completed trials or more; there are 2"):
        param_importances(trials.head(2))
    with pytest.raises(ImportanceUnavailable, match="only learning rate varies"):
        param_importances(trials[trials["backbone"] == "mobilenetv2"].pipe(
            lambda t: pd.concat([t, t.assign(number=t["number"] + 10)])).drop(columns=["backbone"]))


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_results_page_shows_the_comparison_and_the_importance(swept: RunStore) -> None:
    at = page("views/3_Results.py")
    no_errors(at)
    table = next(d.value for d in at.dataframe if "backbone images/s" in d.value.index)   # a column per backbone
    assert list(table.index) == COLUMNS[1:] and sorted(table.columns) == sorted(BACKBONES)
    assert table.loc["backbone images/s"].ne("-").all() and table.loc["test accuracy"].eq("-").sum() == 1
    titles = [f["layout"].get("title", {}).get("text", "") for f in _figures(at)]
    assert "Backbones side by side" in titles and "Parameter importance (fANOVA)" in titles, titles
    next(s for s in at.selectbox if s.label == "Parameter importance by").set_value("ped_anova").run()
    no_errors(at)
    assert "Parameter importance (PED-ANOVA)" in [f["layout"]["title"]["text"] for f in _figures(at)
                                                    if "title" in f["layout"]]
