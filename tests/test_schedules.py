"""Learning-rate schedules and the list-valued dense head: the rate each epoch really trains with."""
from __future__ import annotations

import math

import pytest
from trials import small_params

from core.models.classifier import build_classifier
from core.spec.sweep import SpecError, SweepSpec
from core.training.activations import ActivationCache
from core.training.schedules import learning_rate_at
from core.training.trial import TrialRunner


@pytest.mark.parametrize("schedule, expected", [
    ("constant", [0.1] * 7),
    ("step", [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001]),
    ("exponential", [0.1 * 0.01 ** (e / 6) for e in range(7)]),
    ("cosine", [0.1 * 0.5 * (1 + math.cos(math.pi * e / 6)) for e in range(7)]),
])
def test_each_schedule_takes_the_rate_where_it_says(schedule, expected):
    params = small_params(learning_rate=0.1, epochs=7, lr_schedule=schedule)
    assert [learning_rate_at(params, e) for e in range(7)] == pytest.approx(expected)


def test_warm_up_climbs_to_the_rate_then_the_schedule_starts():
    params = small_params(learning_rate=0.1, epochs=6, lr_schedule="cosine", warmup_epochs=2)
    rates = [learning_rate_at(params, e) for e in range(6)]
    assert rates[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])
    assert rates[-1] == pytest.approx(0.0, abs=1e-12) and rates == sorted(rates[:3]) + sorted(rates[3:], reverse=True)


def test_a_trial_trains_each_epoch_at_the_scheduled_rate(trial_data, tmp_path):  # noqa: F811
    params = small_params(learning_rate=0.05, epochs=5, optimizer="sgd", lr_schedule="step", reduce_lr=1)
    result = TrialRunner(trial_data, cache=ActivationCache(tmp_path)).run(params)
    for fold in result.folds:
        assert fold.curves["learning_rate"] == pytest.approx([learning_rate_at(params, e) for e in range(5)])


@pytest.mark.parametrize("dropout, rates", [((0.5,), (0.5, 0.5, 0.5)), ((0.5, 0.2, 0.1), (0.5, 0.2, 0.1))])
def test_the_dense_head_has_a_layer_per_width_with_its_dropout(dropout, rates):
    clf = build_classifier(small_params(head="dense_dropout", dense_units=(16, 8, 4), dropout=dropout),
                           num_classes=3)
    dense = [layer for layer in clf.model.layers if layer.name.startswith("head_dense")]
    drops = [layer for layer in clf.model.layers if layer.name.startswith("head_dropout")]
    assert [layer.name for layer in dense] == ["head_dense", "head_dense_2", "head_dense_3"]
    assert [layer.name for layer in drops] == ["head_dropout", "head_dropout_2", "head_dropout_3"]
    assert [layer.units for layer in dense] == [16, 8, 4]
    assert [layer.rate for layer in drops] == pytest.approx(rates)


def test_schedule_fields_are_checked_and_sweepable():
    spec = SweepSpec.from_dict({"name": "s", "data": {"dataset": "x"},
                                "search": {"space": {"lr_schedule": ["constant", "cosine"], "warmup_epochs": [0, 2]}}})
    assert spec.planned_trials() == 4
    with pytest.raises(SpecError, match="lr_schedule"):
        SweepSpec.from_dict({"name": "s", "data": {"dataset": "x"}, "params": {"lr_schedule": "linear"}})
