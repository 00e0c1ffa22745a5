"""Chart builders return the expected traces and data, and serialise; no browser needed (except PNG export)."""
from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.results import charts
from core.results.chart_style import ERROR_TITLE, PALETTE, encode, label
from core.runs.evaluation import Evaluation
from core.runs.trials_table import TRIAL_COLUMNS, param_columns


def example_trials(grid: bool = True) -> pd.DataFrame:
    """The ResNet50V2 grid: trainable layers 1..10 x batch size {32, 64, 128}, 3 folds each, plus
    an optimizer and a learning rate per trial; `grid=False` drops three cells and adds live trials."""
    rng = np.random.default_rng(7)
    rows = []
    for number, (layers, batch) in enumerate(itertools.product(range(1, 11), (32, 64, 128))):
        folds = rng.uniform(0.05, 0.4, 3).round(4).tolist()
        rows.append(dict(number=number, state="COMPLETE", value=float(np.mean(folds)), value_std=float(np.std(folds)),
                         fold_errors=folds, trainable_layers=layers, batch_size=batch,
                         optimizer=("SGD", "Adam", "Nadam")[number % 3], learning_rate=(1e-4, 1e-3, 1e-2)[number % 3],
                         duration_s=12.5, sweep="resnet50v2-grid"))
    trials = pd.DataFrame(rows)
    if grid:
        return trials
    trials = trials.drop(index=[0, 4, 8]).copy()
    live = [dict(number=30, state="RUNNING", value=np.nan, value_std=np.nan, fold_errors=[0.2]),
            dict(number=31, state="WAITING", value=np.nan, value_std=np.nan, fold_errors=[]),
            dict(number=32, state="FAIL", value=np.nan, value_std=np.nan, fold_errors=[])]
    return pd.concat([trials, pd.DataFrame(live)], ignore_index=True)


@pytest.fixture
def evaluation() -> Evaluation:
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    return Evaluation(["daisy", "rose", "tulip"], [0, 1, 0, 2, 1], scores)


def trace_types(fig: go.Figure) -> list[str]:
    return [trace.type for trace in fig.data]


def serialises(fig: go.Figure) -> bool:
    return isinstance(json.loads(fig.to_json()), dict)


def test_trial_columns_are_documented_and_params_are_the_rest() -> None:
    assert {"number", "state", "value", "value_std", "fold_errors", "duration_s", "sweep", "cache",
            "error"} == set(TRIAL_COLUMNS)
    assert param_columns(example_trials()) == ["trainable_layers", "batch_size", "optimizer", "learning_rate"]


def test_store_bookkeeping_columns_are_not_params() -> None:
    """The store's trials table also has cache and error columns: they must not be offered as axes."""
    trials = example_trials().assign(cache="hit", error="")
    assert param_columns(trials) == ["trainable_layers", "batch_size", "optimizer", "learning_rate"]


def test_encode_categorical_log_and_linear() -> None:
    opt = encode(pd.Series(["Nadam", "SGD", "Nadam", None]))
    assert opt.categorical and opt.ticktext == ["Nadam", "SGD"]
    np.testing.assert_array_equal(opt.coords[:3], [0, 1, 0])
    assert np.isnan(opt.coords[3])     # a missing value has no place on the axis
    lr = encode(pd.Series([1e-4, 1e-2, 1e-3]))
    np.testing.assert_allclose(lr.coords, [-4, -2, -3])
    assert lr.ticktext == ["0.0001", "0.001", "0.01"]
    batch = encode(pd.Series([32, 64, 128]))
    np.testing.assert_array_equal(batch.coords, [32, 64, 128])
    assert batch.ticktext == ["32", "64", "128"]
    assert encode(pd.Series([True, False])).ticktext == ["True", "False"]
    assert label("trainable_layers") == "trainable layers" and label("value") == ERROR_TITLE


def test_error_surface_full_grid() -> None:
    trials = example_trials()
    fig = charts.error_surface_3d(trials, "trainable_layers", "batch_size")
    assert trace_types(fig) == ["surface", "scatter3d"]
    surface, points = fig.data
    z = np.asarray(surface.z)
    assert z.shape == (3, 10)
    expected = trials.pivot(index="batch_size", columns="trainable_layers", values="value").to_numpy()
    np.testing.assert_allclose(z, expected)
    np.testing.assert_allclose(points.error_z.array, trials["value_std"])
    assert fig.layout.scene.zaxis.title.text == ERROR_TITLE
    assert fig.layout.scene.xaxis.title.text == "trainable layers"
    assert list(fig.layout.scene.yaxis.ticktext) == ["32", "64", "128"]
    assert serialises(fig)


def test_error_surface_scatter_when_not_a_grid_with_categorical_axis_and_colour() -> None:
    fig = charts.error_surface_3d(example_trials(grid=False), "optimizer", "trainable_layers", color="learning_rate")
    assert "surface" not in trace_types(fig)
    (points,) = fig.data
    assert list(fig.layout.scene.xaxis.ticktext) == ["Adam", "Nadam", "SGD"]  # first appearance after drops
    assert set(np.asarray(points.x)) == {0.0, 1.0, 2.0}
    assert list(points.marker.colorbar.ticktext) == ["0.0001", "0.001", "0.01"]
    assert len(points.z) == 27  # only completed trials
    assert serialises(fig)


def test_error_surface_rejects_unknown_param() -> None:
    with pytest.raises(ValueError, match="momentum"):
        charts.error_surface_3d(example_trials(), "momentum", "batch_size")


def test_no_completed_trials_gives_a_message() -> None:
    trials = example_trials().assign(state="RUNNING", value=np.nan)
    for fig in (charts.error_surface_3d(trials, "trainable_layers", "batch_size"),
                charts.parallel_coordinates(trials, ["batch_size"]), charts.error_vs_param(trials, "batch_size")):
        assert not fig.data and "no completed trials" in fig.layout.annotations[0].text


def test_parallel_coordinates_encodes_categoricals_and_colours_by_error() -> None:
    trials = example_trials()
    fig = charts.parallel_coordinates(trials, ["trainable_layers", "optimizer", "learning_rate"])
    assert trace_types(fig) == ["parcoords"]
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == ["trainable layers", "optimizer", "learning rate", ERROR_TITLE]
    assert list(dims[1].ticktext) == ["SGD", "Adam", "Nadam"]
    np.testing.assert_allclose(fig.data[0].line.color, trials["value"])
    assert (fig.data[0].line.cmin, fig.data[0].line.cmax) == (trials["value"].min(), trials["value"].max())
    tied = charts.parallel_coordinates(trials.assign(value=0.25), ["optimizer"])
    assert tied.data[0].line.showscale is False
    assert serialises(fig)


def test_error_vs_param_means_and_fold_points() -> None:
    trials = example_trials()
    fig = charts.error_vs_param(trials, "batch_size")
    folds, means = fig.data
    assert len(folds.y) == 90  # 30 trials x 3 folds
    assert np.all(np.abs(np.asarray(folds.x) - np.round(np.asarray(folds.x) / 32) * 32) < 32 * 0.13)
    np.testing.assert_allclose(means.y, trials.groupby("batch_size")["value"].mean())
    assert fig.layout.yaxis.title.text == ERROR_TITLE and fig.layout.xaxis.title.text == "batch size"
    assert serialises(fig)


def test_trial_progress_best_so_far_and_states() -> None:
    trials = example_trials(grid=False)
    fig = charts.trial_progress(trials)
    best = next(t for t in fig.data if t.name == "best so far")
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    assert np.nanmin(np.asarray(best.y, dtype=float)) == pytest.approx(done["value"].min())
    assert np.all(np.diff(np.asarray(best.y, dtype=float)[1:]) <= 0)
    legend = {t.name for t in fig.data if t.showlegend is not False}
    assert {"complete (27)", "running (1)", "waiting (1)", "fail (1)"} <= legend
    assert serialises(fig)


def test_trial_progress_ticks_are_whole_trial_numbers() -> None:
    two = example_trials().head(2)
    assert charts.trial_progress(two).layout.xaxis2.dtick == 1
    assert charts.trial_progress(example_trials()).layout.xaxis.dtick == 3   # 0..29: about ten ticks
    unscored = example_trials(grid=False).tail(2)
    assert tuple(charts.trial_progress(unscored).layout.yaxis.range) == (0, 1)


def test_sweep_progress_at_the_start_has_no_negative_errors_and_no_trial_minus_one() -> None:
    first = example_trials().head(1)
    fig = charts.trial_progress(first)
    assert tuple(fig.layout.xaxis2.range) == (-0.5, 0.5)           # trial 0 alone: not plotly's -1..1
    assert fig.layout.yaxis.rangemode == "nonnegative"            # one error: no -0.5 on the error axis


def test_learning_curves_styles_and_fine_tune_line() -> None:
    curves = {f"fold {i}": {"loss": [1.0, 0.7, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.7, 0.7],
                            "accuracy": [0.5, 0.7, 0.8, 0.9], "val_accuracy": [0.4, 0.6, 0.7, 0.7]} for i in (1, 2)}
    fig = charts.learning_curves(curves, fine_tune_epoch=2, metric="loss")
    assert [t.line.dash for t in fig.data] == ["solid", "dash", "solid", "dash"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert list(fig.data[1].y) == [1.1, 0.8, 0.7, 0.7] and list(fig.data[0].x) == [1, 2, 3, 4]
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == 2.5
    assert fig.layout.annotations[0].text == "fine-tuning begins"
    assert fig.layout.annotations[0].xanchor == "right"            # past the middle: written on the left
    early = charts.learning_curves(curves, fine_tune_epoch=1, metric="loss").layout.annotations[0]
    assert early.xanchor == "left"                                 # early: into the room on the right, not cut
    assert fig.layout.yaxis.title.text == "loss"
    assert fig.layout.xaxis.dtick == 1    # four epochs: a tick per epoch, never 0.5
    assert not charts.learning_curves(curves).layout.shapes
    with pytest.raises(ValueError, match="f1"):
        charts.learning_curves(curves, metric="f1")
    assert serialises(fig)


def test_confusion_matrix_counts_and_click_data() -> None:
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    fig = charts.confusion_matrix(cm, ["daisy", "rose", "tulip"], title="test split")
    heat, cells = fig.data
    assert heat.type == "heatmap" and cells.type == "scatter" and cells.marker.opacity == 0
    # The markers take hover and clicks (a heatmap cell cannot be selected), from anywhere in their cell.
    assert heat.hoverinfo == "skip" and cells.hoverinfo is None and fig.layout.hoverdistance == -1
    assert charts.confusion_cell({"customdata": list(cells.customdata[3])}) == (1, 0)
    assert charts.confusion_cell({"customdata": {"0": 1, "1": 0}}) == (1, 0)    # a typed array, as Streamlit sends it
    assert (cells.x[3], cells.y[3], cells.text[3]) == ("daisy", "rose", "2")  # true rose, predicted daisy
    assert charts.confusion_cell({"x": "rose"}) is None
    np.testing.assert_array_equal(heat.z, cm)
    assert heat.text[1][0] == "2"
    assert fig.layout.title.text == "test split" and fig.layout.yaxis.autorange == "reversed"
    normalised = charts.confusion_matrix(cm, ["daisy", "rose", "tulip"], normalize=True).data[0]
    np.testing.assert_allclose(np.asarray(normalised.z).sum(axis=1), 1.0)
    assert normalised.text[1][0] == "33%<br>(2)"
    with pytest.raises(ValueError, match="2 classes"):
        charts.confusion_matrix(cm, ["a", "b"])
    assert serialises(fig)


def test_pr_curves_legend_and_threshold_marker(evaluation: Evaluation) -> None:
    fig = charts.pr_curves(evaluation, threshold=0.5)
    curves = [t for t in fig.data if t.mode == "lines"]
    assert len(curves) == 3 and curves[0].name == f"daisy (AP {evaluation.average_precision(0):.2f})"
    assert curves[1].line.color == PALETTE[1]
    marker = next(t for t in fig.data if t.mode == "markers" and t.legendgroup == "rose")
    point = evaluation.at_threshold(1, 0.5)
    assert (marker.x[0], marker.y[0]) == (point["recall"], point["precision"])
    single = charts.pr_curves(evaluation, class_index=2)
    assert len(single.data) == 1 and single.data[0].name.startswith("tulip")
    assert serialises(fig)


def test_a_pr_curve_never_drops_to_the_base_rate_at_full_recall() -> None:
    """sklearn ends the curve (lowest threshold) at recall 1 and the base rate even when a higher threshold
    already reaches recall 1: a step line would drop there vertically."""
    perfect = Evaluation(["a", "b", "c"], [0, 0, 1, 2], np.eye(3)[[0, 0, 1, 2]] * 0.8 + 0.1)
    curve = charts.pr_curves(perfect, class_index=0).data[0]
    assert (curve.x[0], curve.y[0]) == (1.0, 1.0) and min(curve.y) == 1.0
    assert curve.customdata[0] == pytest.approx(0.9)               # the hover's threshold still matches its point


def test_top_k_curve(evaluation: Evaluation) -> None:
    fig = charts.top_k_curve(evaluation)
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[0].y) == [evaluation.top_k_accuracy(k) for k in (1, 2, 3)]
    assert fig.data[0].y[-1] == 1.0
    assert fig.data[0].cliponaxis is False and tuple(fig.layout.xaxis.range) == (0.5, 3.5)   # no label cut


def test_dataset_charts() -> None:
    counts = charts.class_counts({"daisy": 10, "rose": 7})
    assert trace_types(counts) == ["bar"] and list(counts.data[0].y) == [10, 7]
    assert list(counts.data[0].marker.color) == list(PALETTE[:2])
    table = pd.DataFrame({"train": [7, 5], "val": [2, 1], "test": [1, 1]}, index=["daisy", "rose"])
    splits = charts.split_counts(table)
    assert [t.name for t in splits.data] == ["train", "val", "test"] and splits.layout.barmode == "group"
    sizes = charts.image_sizes([("a.jpg", 10, 20), ("b.jpg", 30, 40), ("c.jpg", 50, 5)], ["rose", "daisy", "rose"])
    assert [t.name for t in sizes.data] == ["daisy", "rose"] and list(sizes.data[1].text) == ["a.jpg", "c.jpg"]
    assert trace_types(charts.image_sizes([("a.jpg", 10, 20)], None)) == ["scatter"]
    for fig in (counts, splits, sizes):
        assert fig.layout.template.layout.colorway == PALETTE and serialises(fig)
        assert fig.layout.template.layout.title.xref == "paper"  # titles align with the plot, not the clipped edge


def test_fig_to_png() -> None:
    if shutil.which("chromium") is None:
        pytest.skip("PNG export needs a Chromium binary (Debian's `chromium`, installed by .ci/run); none on PATH")
    png = charts.fig_to_png(charts.class_counts({"a": 1, "b": 2}), width=300, height=200)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_reliability_diagram_draws_each_table_against_the_diagonal() -> None:
    from core.results.calibration import reliability
    p = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 0])
    fig = charts.reliability_diagram({"before": reliability(p, labels, bins=10),
                                      "after": reliability(np.full_like(p, 0.5), labels, bins=10)})
    names = [trace.name for trace in fig.data]
    assert names[0] == "perfect calibration" and list(fig.data[0].x) == [0, 1]
    assert names[1] == "before (ECE 0.133)" and names[2].startswith("after (ECE")
    np.testing.assert_allclose(fig.data[1].x, [0.6, 0.9])     # only the bins that hold images
    np.testing.assert_allclose(fig.data[1].y, [0.5, 0.75])
    json.loads(fig.to_json())
