"""No trial kind below the probe (issue 20): on a small problem whose classes are only linearly apart in a
frozen backbone's features, the plain default network trial (frozen backbone, linear head, every other
default) and the svm kind reach standardised logistic regression's accuracy on the same folds."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import write_class_folders
from core.runs.store import RunStore
from core.search.refit import finalize
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec
from core.training.features_kinds import SVM_SPACE, run_features_trial
from core.training.linear_start import logistic_regression, standardiser
from core.training.plan import SweepData

# Close colours under heavy noise, through a random-weight Lite0 (the default backbone; its features are small,
# ~0.01): classes apart by a small linear shift, the convex problem a linear head on frozen features is.
NEAR_COLOURS = {"grey": (120, 120, 120), "reddish": (150, 120, 120), "greenish": (120, 150, 120),
                "bluish": (120, 120, 150)}


def near_spec(root) -> SweepSpec:
    """Every default but a backbone without ImageNet weights at a small size."""
    return SweepSpec.from_dict({"name": "near", "data": {"dataset": str(root), "test_fraction": 0.25},
                                "params": {"weights": "none", "image_size": 32}})


@pytest.fixture(scope="module")
def near(tmp_path_factory):
    return write_class_folders(tmp_path_factory.mktemp("near") / "near", per_class=24, classes=NEAR_COLOURS)


@pytest.fixture(scope="module")
def runner(near):
    spec = near_spec(near)
    return SweepData(spec).runner(spec.params), spec.params


def errors(result) -> float:
    return float(np.mean([f.val_error for f in result.folds]))


def test_the_default_linear_head_reaches_logistic_regression(runner):
    runner, params = runner
    assert params.head == "linear" and params.trainable_layers == 0 and params.kind == "network"
    logreg = errors(run_features_trial(runner, dataclasses.replace(params, kind="logreg")))
    network = runner.run(params)
    assert logreg < 0.5                                      # the problem is learnable, not trivial
    assert errors(network) <= logreg + 1e-9
    assert all(len(f.curves["val_loss"]) >= 1 for f in network.folds)     # epochs still ran and were recorded


def test_the_default_svm_reaches_logistic_regression(runner):
    runner, params = runner
    logreg = errors(run_features_trial(runner, dataclasses.replace(params, kind="logreg")))
    svm = errors(run_features_trial(runner, dataclasses.replace(params, kind="svm")))
    assert svm <= logreg + 1e-9, (svm, logreg)
    searched = [errors(run_features_trial(runner, dataclasses.replace(params, kind="svm", svm_kernel=kernel,
                                                                      svm_c=c)))
                for kernel in SVM_SPACE["svm_kernel"] for c in SVM_SPACE["svm_c"]]
    assert min(searched) <= logreg + 1e-9


def test_the_default_sweeps_final_model_is_the_probe_or_better(near, tmp_path):
    """The plain default sweep's refit, tested, against the probe: standardised logistic regression fitted on
    the whole train part's frozen features."""
    spec = near_spec(near)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(spec)
    assert run_worker(store, "near") == 1
    final = finalize(store, "near")
    data = SweepData(spec)
    features, labels = data.runner(spec.params).pooled_features(spec.params), data.dataset.labels
    train, test = data.train_rows, data.test_rows
    scaler = standardiser(features[train])
    probe = logistic_regression(spec.params).fit(scaler.transform(features[train]), labels[train])
    accuracy = np.mean(probe.predict(scaler.transform(features[test])) == labels[test])
    assert final.test_accuracy >= accuracy - 1e-9, (final.test_accuracy, accuracy)
