"""One entry per trial kind: the search wing asks for a trial or a refit; the kind decides how it trains.

`network` trains a Keras head (and backbone layers) per fold (`core.training.trial.TrialRunner`);
`svm` / `logreg` fit scikit-learn on features (`core.training.features_kinds`). Adding a kind
touches its own module here, the branches below, and its name and fields in the spec
(`core/spec/sweep.py`, `TrialParams.kind`); the worker and the refit do not change.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.progress import Progress
from core.spec.sweep import TrialParams

if TYPE_CHECKING:
    import keras

    from core.runs.evaluation import Evaluation
    from core.runs.records import TrialResult
    from core.training.trial import OnFold, Reporter, TrialRunner


# What svm / logreg on the frozen backbone's pooled features read of a configuration: nothing else changes
# their fit (`features_kinds.fit_features`, `TrialRunner.pooled_features`).
FROZEN_FEATURES_READ = ("kind", "backbone", "weights", "image_size", "features_from",
                        "svm_kernel", "svm_c", "svm_gamma", "svm_degree", "logreg_c")


def same_work(a: TrialParams, b: TrialParams) -> bool:
    """Whether two configurations fit the same model: alike in every field, or both a scikit-learn kind on the
    frozen features alike in the fields it reads (a grid over kind x trainable_layers would otherwise fit one
    SVM once per depth)."""
    if a.trains_network or b.trains_network:
        return a == b
    return all(getattr(a, name) == getattr(b, name) for name in FROZEN_FEATURES_READ)


def keeps_fold_models(params: TrialParams) -> bool:
    """Whether the kind's fold models are what a fold ensemble averages (`run_trial`'s `on_fold`)."""
    return params.kind == "network"


def run_trial(runner: TrialRunner, params: TrialParams, base_cut: str | None,
              reporter: Reporter | None = None, fold_progress: Progress | None = None,
              on_fold: OnFold | None = None) -> TrialResult:
    """K-fold CV of one configuration of any kind on `runner`'s data; its value is the mean validation error.

    `base_cut`: the sweep's lowest cut. `reporter` sees each epoch of a network the trial trains;
    `fold_progress` (done, total) each fold a scikit-learn kind fits; `on_fold` each fold's trained model
    when `keeps_fold_models` (the fold ensemble), otherwise it is not called.
    """
    if params.kind == "network":
        return runner.run(params, reporter, base_cut=base_cut, on_fold=on_fold)
    from core.training.features_kinds import run_features_trial
    return run_features_trial(runner, params, fold_progress, reporter, base_cut)


def refit_trial(runner: TrialRunner, params: TrialParams, epochs: int, base_cut: str | None,
                reporter: Reporter | None = None) -> tuple[keras.Model, Evaluation, Evaluation]:
    """The configuration fitted on the whole train part (`epochs` of network training, `reporter` sees each):
    the Keras model (images -> scores) and its test and train evaluations."""
    if params.kind == "network":
        clf, test, train = runner.refit(params, epochs, base_cut=base_cut, reporter=reporter)
        return clf.model, test, train
    from core.training.features_kinds import refit_features
    return refit_features(runner, params, epochs, base_cut=base_cut, reporter=reporter)


def refit_description(params: TrialParams, epochs: int) -> str:
    """How `refit_trial` fits this configuration, for the driver's log line."""
    if params.kind == "network":
        return f"for {epochs} epochs"
    if params.trains_network:
        return f"for {epochs} epochs, then {params.kind} on the network's penultimate features"
    return f"({params.kind} on the frozen {params.backbone} features)"
