"""Staged fine-tuning (head on the frozen backbone, then the top layers at a lower rate) and SGD momentum
decay: real Keras on tiny generated images, a real SQLite store for the live record."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf
from trials import small_params, tiny_trial_data

from core.models.classifier import build_classifier
from core.results import charts
from core.runs.store import RunStore
from core.search.worker import run_worker
from core.spec.fields import fields_by_path, sweepable_params
from core.spec.sweep import SpecError, SweepSpec, TrialParams
from core.training.activations import ActivationCache
from core.training.momentum import set_momentum
from core.training.schedules import momentum_at
from core.training.trial import TrialRunner, make_optimizer


@pytest.fixture
def staged_data(tiny_dataset):
    """The one-trial tests' TrialData: tiny colour images, two interleaved folds."""
    return tiny_trial_data(tiny_dataset)


NEW_FIELDS = ("stage1_epochs", "stage2_lr_factor", "momentum_decay")


def staged_params(**overrides) -> TrialParams:
    return small_params(**{"trainable_layers": 3, "stage1_epochs": 2, "epochs": 2, "learning_rate": 0.01,
                           "stage2_lr_factor": 0.1, "optimizer": "sgd", **overrides})


def stage_two_weights(params: TrialParams) -> Callable[[], np.ndarray]:
    """The current values of the backbone's trainable weights in stage 2, all in one vector (the backbone's
    layers are shared by every classifier of one configuration in a process)."""
    clf = build_classifier(params, num_classes=3)
    variables = [v for name in clf.trainable for v in clf.model.get_layer(name).trainable_weights]
    assert variables
    return lambda: np.concatenate([np.ravel(v.numpy()) for v in variables])


# --- the schema --------------------------------------------------------------------------------------

def test_new_fields_are_sweepable_in_the_schema_and_round_trip_yaml():
    by_path, swept = fields_by_path(), {f.name for f in sweepable_params()}
    for name in NEW_FIELDS:
        assert f"params.{name}" in by_path and name in swept and by_path[f"params.{name}"].help
    assert TrialParams().stage1_epochs == 0              # one stage unless a spec asks for two
    spec = SweepSpec.from_dict({"name": "staged", "data": {"dataset": "colours"},
                                "params": {"stage1_epochs": 3, "stage2_lr_factor": 0.2, "optimizer": "sgd",
                                           "momentum_decay": 0.5},
                                "search": {"space": {"stage1_epochs": [0, 2], "stage2_lr_factor": [0.1, 0.5],
                                                     "momentum_decay": [0.0, 0.9]}}})
    again = SweepSpec.from_yaml(spec.to_yaml())
    assert again == spec and (again.params.stage1_epochs, again.params.momentum_decay) == (3, 0.5)


def test_momentum_decay_with_a_fixed_optimizer_other_than_sgd_is_refused_by_field():
    base = {"name": "m", "data": {"dataset": "colours"}}
    with pytest.raises(SpecError, match=r"^params.momentum_decay: .*sgd"):
        SweepSpec.from_dict(base | {"params": {"optimizer": "adam", "momentum_decay": 0.5}})
    with pytest.raises(SpecError, match=r"^search.space.momentum_decay: .*sgd"):
        SweepSpec.from_dict(base | {"params": {"optimizer": "adam"},
                                    "search": {"space": {"momentum_decay": [0.0, 0.5]}}})
    swept = SweepSpec.from_dict(base | {"params": {"momentum_decay": 0.5},          # a no-op for adam trials
                                        "search": {"space": {"optimizer": ["sgd", "adam"]}}})
    assert isinstance(make_optimizer(swept.trial_params({"optimizer": "adam"})), keras.optimizers.Adam)


# --- momentum decay ----------------------------------------------------------------------------------

def test_momentum_falls_linearly_to_its_floor_over_the_planned_epochs():
    params = small_params(optimizer="sgd", momentum=0.9, momentum_decay=0.5, epochs=5)
    values = [momentum_at(params, e) for e in range(5)]
    np.testing.assert_allclose(values, np.linspace(0.9, 0.45, 5))
    staged = dataclasses.replace(params, stage1_epochs=3)         # the decay spans both stages
    assert momentum_at(staged, 7) == pytest.approx(0.45) and momentum_at(staged, 3) > 0.45


def test_the_compiled_sgd_step_reads_the_momentum_set_between_epochs():
    """Keras bakes a float momentum into the traced step; ours must read the value set after tracing."""
    lr = 0.1
    params = small_params(optimizer="sgd", learning_rate=lr, momentum=0.9, momentum_decay=1.0)
    optimizer = make_optimizer(params)
    weight = keras.Variable([0.0])
    optimizer.build([weight])
    step = tf.function(lambda: optimizer.apply([tf.constant([1.0])], [weight]))
    step()                                             # velocity -lr, weight -lr (traced with momentum 0.9)
    set_momentum(optimizer, 0.0)
    step()                                             # momentum 0: velocity -lr again, not -0.9 lr - lr
    assert float(weight.numpy()[0]) == pytest.approx(-2 * lr)


def test_momentum_decay_sets_the_sgd_momentum_of_every_epoch(staged_data):
    params = small_params(optimizer="sgd", momentum=0.9, momentum_decay=0.5, epochs=3)
    seen: list[float] = []
    runner = TrialRunner(staged_data, cache=None)
    result = runner.run(params, lambda fold, epoch, logs: seen.append(logs["momentum"]))
    expected = [momentum_at(params, e) for e in range(3)]
    np.testing.assert_allclose(seen, expected * 2, rtol=1e-6)
    np.testing.assert_allclose(result.folds[0].curves["momentum"], expected, rtol=1e-6)


# --- staged fine-tuning ------------------------------------------------------------------------------

def test_stage_two_trains_more_variables_than_stage_one():
    clf = build_classifier(staged_params(), num_classes=3)
    head_only = clf.frozen_view()
    assert head_only.model is clf.model and head_only.cut == "feature_pool"
    assert 0 < len(head_only.top_model().trainable_variables) < len(clf.top_model().trainable_variables)


@pytest.mark.parametrize("cached", [True, pytest.param(False, marks=pytest.mark.slow)])   # images: 11 s
def test_stage_two_unfreezes_the_top_layers_at_the_lower_rate(staged_data, tmp_path, cached):
    params = staged_params()
    backbone = stage_two_weights(params)
    pretrained = backbone()
    epochs, rates, stages, changed = [], [], [], []

    def report(fold: int, epoch: int, logs: dict) -> None:
        if fold == 0:
            epochs.append(epoch)
            rates.append(logs["learning_rate"])
            stages.append(logs["stage"])
            changed.append(not np.array_equal(backbone(), pretrained))

    runner = TrialRunner(staged_data, cache=ActivationCache(tmp_path) if cached else None)
    result = runner.run(params, report)
    assert epochs == [0, 1, 2, 3]                                    # numbered on across the stages
    assert stages == [1, 1, 2, 2]
    assert changed == [False, False, True, True]                     # frozen in stage 1, trained in stage 2
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    for fold in result.folds:
        assert all(len(values) == 4 for values in fold.curves.values()) and fold.curves["stage"] == stages
        assert fold.best_epoch >= params.stage1_epochs                # the best epoch is one of stage 2
    assert result.cache == ("miss" if cached else "off")


def test_stage_one_head_carries_into_stage_two(staged_data, tmp_path):
    """Stage 2 starts where stage 1 ended: its first epoch's loss continues stage 1's, not a fresh head's."""
    params = staged_params(stage1_epochs=4, learning_rate=0.05, stage2_lr_factor=0.02)
    fresh = dataclasses.replace(params, stage1_epochs=0, epochs=1, learning_rate=0.001)
    runner = TrialRunner(staged_data, cache=ActivationCache(tmp_path))
    staged = runner.run(params).folds[0].curves["loss"]
    untrained = runner.run(fresh).folds[0].curves["loss"]
    assert staged[4] < untrained[0] and staged[4] < staged[0]


def test_refit_runs_both_stages_and_counts_epochs_across_them(staged_data, tmp_path):
    params = staged_params(early_stopping=2)
    seen: list[tuple[int, float]] = []
    runner = TrialRunner(staged_data, cache=ActivationCache(tmp_path))
    clf, test, _ = runner.refit(params, 3, reporter=lambda f, e, logs: seen.append((e, logs["stage"])))
    assert seen == [(0, 1), (1, 1), (2, 2)]           # 3 epochs in all: stage 1 as given, then stage 2
    assert len(test.y_true) == len(staged_data.test_rows) and clf.trainable


def test_learning_curves_draw_the_stage_two_line_from_the_stage_curve():
    curves = {"fold 1": {"loss": [1.0, 0.8, 0.6, 0.5, 0.4], "stage": [1, 1, 1, 2, 2]},
              "fold 2": {"loss": [1.0, 0.7, 0.6, 0.4], "stage": [1, 1, 1, 2]}}
    fig = charts.learning_curves(curves, metric="loss")
    assert [shape.x0 for shape in fig.layout.shapes] == [3.5]
    assert not charts.learning_curves({"fold 1": {"loss": [1.0, 0.5]}}, metric="loss").layout.shapes


def test_a_staged_sweep_plans_and_records_both_stages(tiny_dataset, tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_dict({
        "name": "staged", "folds": 2, "data": {"dataset": str(tiny_dataset), "test_fraction": 0.25},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32, "epochs": 2,
                   "stage1_epochs": 1, "trainable_layers": 3, "batch_size": 8, "early_stopping": 0,
                   "reduce_lr": 0},
        "search": {"space": {"stage2_lr_factor": [0.1]}}})
    store.create_sweep(spec)
    assert run_worker(store, "staged") == 1
    trial = store.trial("staged", 0)
    assert trial.live.epochs == 3 and trial.live.epochs_done == 6          # "epoch e of 3", both folds
    assert trial.result.folds[1].curves["stage"] == [1, 2, 2]
