"""The scikit-learn trial kinds: an SVM or a logistic regression on an image's features.

The features (`features_from`) are the frozen backbone's pooled ones, read once from the activation
cache, or a trained network's penultimate layer (the input of its `predictions` layer): each fold
first trains the network the params describe, as a network trial's fold (its learning curves are
kept), then reads its train and validation rows' features from the un-augmented source it trained
on (cached activations through its top, or images). Features are standardised (fitted on each
fold's train rows only) and the sweep's own K folds run, so the record (folds, summaries,
out-of-fold scores) is that of a network trial. The final model is a real Keras model: the frozen
backbone (or the trained network cut before its output), then the fitted scaler and classifier
rebuilt from built-in Keras layers with fixed weights (written here because no maintained library
converts scikit-learn models to Keras), in float64, so it loads with plain `keras.saving.load_model`
and gives the pipeline's numbers.

Scores: logistic regression's `predict_proba`; the SVM's, a softmax over its one-vs-rest decision
values (class k against the rest, one binary SVC each): ranking scores, not calibrated probabilities.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import keras
import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from core.models.backbones import POOL_LAYER
from core.models.classifier import build_classifier
from core.models.frontier import JOIN, from_reads
from core.progress import Progress
from core.runs.evaluation import Evaluation
from core.runs.records import FoldResult, TrialResult
from core.spec.sweep import TrialParams
from core.training.linear_start import PREDICTIONS, logistic_regression, standardiser
from core.training.predictions import predict_scores
from core.training.trial import Reporter, TrainedFold, TrialData

SVM_SPACE = {"svm_kernel": ["linear", "rbf"], "svm_c": [1e-3, 1e-2, 0.1, 1.0, 10.0]}
"""The svm kind's search (a grid of 10 trials, seconds each on cached features): the linear kernel wants a
small C on standardised CNN features, rbf a large one, and small data favours the linear kernel."""
EXACT = "float64"            # the rebuilt classifier computes in double precision, as scikit-learn does


@dataclass
class FeatureModel:
    """A fitted scaler and classifier, and the class count they score."""

    kind: str
    scaler: StandardScaler
    estimator: LogisticRegression | OneVsRestClassifier
    n_classes: int

    def scores(self, features: np.ndarray) -> np.ndarray:
        x = self.scaler.transform(features)
        if self.kind == "logreg":
            return self.estimator.predict_proba(x)
        return softmax(_two_columns(self.estimator.decision_function(x)), axis=1)


def _two_columns(decision: np.ndarray) -> np.ndarray:
    """One-vs-rest decision values as (n, classes): a binary problem's one column d becomes [-d, d]."""
    return np.stack([-decision, decision], axis=1) if decision.ndim == 1 else decision


def fit_features(params: TrialParams, features: np.ndarray, labels: np.ndarray, n_classes: int) -> FeatureModel:
    """Standardise, then fit the trial kind's classifier on these rows."""
    scaler = standardiser(features)
    x = scaler.transform(features)
    if params.kind == "logreg":
        estimator = logistic_regression(params)
    elif params.kind == "svm":
        spread = x.shape[1] * x.var()           # svm_gamma 0 = scikit-learn's "scale" (1 for constant x)
        gamma = params.svm_gamma or (1.0 / spread if spread else 1.0)
        estimator = OneVsRestClassifier(SVC(kernel=params.svm_kernel, C=params.svm_c, gamma=gamma,
                                            degree=params.svm_degree))
    else:
        raise ValueError(f"kind: {params.kind!r} is not a scikit-learn trial kind")
    return FeatureModel(params.kind, scaler, estimator.fit(x, labels), n_classes)


def run_features_trial(runner, params: TrialParams, progress: Progress | None = None,
                       reporter: Reporter | None = None, base_cut: str | None = None) -> TrialResult:
    """K-fold CV of one svm / logreg configuration on `runner`'s data (a `TrialRunner`); `progress`
    sees each fold end. With features from a network, `reporter` sees its every epoch and `base_cut` is
    the sweep's lowest cut (as `TrialRunner.run`'s)."""
    if params.features_from == "network":
        return _network_features_trial(runner, params, progress, reporter, base_cut)
    started = time.monotonic()
    data = runner.data
    features = runner.pooled_features(params)
    folds, oof = [], []
    for fold, (train_rows, val_rows) in enumerate(data.folds):
        result, scores = _fold(params, data, fold, features[train_rows], features[val_rows])
        folds.append(result)
        oof.append((val_rows, scores))
        if progress:
            progress(fold + 1, len(data.folds))
    return TrialResult(folds=folds, cache="off" if runner.cache is None else "hit", cut=POOL_LAYER,
                       duration_s=time.monotonic() - started, oof=data.out_of_fold(oof))


def _network_features_trial(runner, params: TrialParams, progress: Progress | None, reporter: Reporter | None,
                            base_cut: str | None) -> TrialResult:
    """Each fold trains the network, then fits on its penultimate features; the network's curves and best
    epoch, the fitted classifier's errors, summaries and out-of-fold scores."""
    data = runner.data
    scored: list[tuple[FoldResult, np.ndarray]] = []

    def fit_fold(trained: TrainedFold) -> None:
        parts = penultimate(trained, data.folds[trained.fold])
        scored.append(_fold(params, data, trained.fold, *parts))
        if progress:
            progress(trained.fold + 1, len(data.folds))

    network = runner.run(params, reporter, base_cut=base_cut, on_fold=fit_fold)
    folds = [dataclasses.replace(mine, best_epoch=trained.best_epoch, curves=trained.curves)
             for (mine, _), trained in zip(scored, network.folds)]
    oof = data.out_of_fold([(val_rows, scores) for (_, val_rows), (_, scores) in zip(data.folds, scored)])
    return dataclasses.replace(network, folds=folds, oof=oof)


def _fold(params: TrialParams, data: TrialData, fold: int, train_x: np.ndarray, val_x: np.ndarray
          ) -> tuple[FoldResult, np.ndarray]:
    """Fit on one fold's train rows' features; its FoldResult and its validation rows' scores."""
    train_rows, val_rows = data.folds[fold]
    fitted = fit_features(params, train_x, data.labels[train_rows], len(data.classes))
    scores = fitted.scores(val_x)
    evaluation = Evaluation(data.classes, data.labels[val_rows], scores)
    return FoldResult(fold=fold, val_error=1.0 - evaluation.accuracy(), best_epoch=0, curves={},
                      summary=evaluation.summary()), scores


def penultimate_model(model: keras.Model, reads: str | None = None) -> keras.Model:
    """A classifier from what `reads` names (a layer's output or a packed frontier; None: its input) to the
    features its `predictions` layer reads."""
    features, name = model.get_layer(PREDICTIONS).input, f"{model.name}_features"
    if reads is None:
        return keras.Model(model.input, features, name=name)
    return from_reads(model, reads, features, name)


def penultimate(trained: TrainedFold, parts: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """The trained classifier's penultimate features (float64) of each of `parts`' rows of what it read."""
    model, reads, source = trained.model, trained.reads, trained.source
    if reads is not None and JOIN not in reads and model.get_layer(reads).output is model.get_layer(PREDICTIONS).input:
        return [np.asarray(source[rows], dtype=np.float64) for rows in parts]     # a linear head on the cut
    features = penultimate_model(model, reads)
    return [predict_scores(features, source, rows) for rows in parts]


def refit_features(runner, params: TrialParams, epochs: int = 0, base_cut: str | None = None,
                   reporter: Reporter | None = None) -> tuple[keras.Model, Evaluation, Evaluation]:
    """Fit on the whole train part; the Keras model (images -> scores) and its test and train evaluations.

    With features from a network, it first trains for `epochs` on the whole train part (`reporter`
    sees each), as a network's refit.
    """
    data = runner.data
    parts = (data.test_rows, data.train_rows)
    if params.features_from == "network":
        extractor, (test_x, train_x) = _refit_network(runner, params, epochs, base_cut, reporter, parts)
    else:
        features = runner.pooled_features(params)
        frozen = dataclasses.replace(params, trainable_layers=0, augmentation="none")
        clf = build_classifier(frozen, len(data.classes), seed=runner.seed)
        extractor = keras.Model(clf.model.input, clf.model.get_layer(POOL_LAYER).output)
        test_x, train_x = (features[rows] for rows in parts)
    fitted = fit_features(params, train_x, data.labels[data.train_rows], len(data.classes))
    evaluations = []
    for rows, x in zip(parts, (test_x, train_x)):
        paths = [data.paths[r] for r in rows] if data.paths else None
        evaluations.append(Evaluation(data.classes, data.labels[rows], fitted.scores(x), paths=paths))
    model = keras.Model(extractor.input, keras_scores(fitted, extractor.output),
                        name=f"{params.backbone}_{params.kind}")
    return model, evaluations[0], evaluations[1]


def _refit_network(runner, params: TrialParams, epochs: int, base_cut: str | None, reporter: Reporter | None,
                   parts: tuple[np.ndarray, ...]) -> tuple[keras.Model, list[np.ndarray]]:
    """The network trained on the whole train part, cut before its output (images -> features), and the
    features of each of `parts`' rows."""
    features: list[np.ndarray] = []

    def read(trained: TrainedFold) -> None:
        features.extend(penultimate(trained, parts))

    clf, _, _ = runner.refit(params, epochs, base_cut=base_cut, reporter=reporter, on_fit=read)
    return penultimate_model(clf.model), features


def features_head(fitted: FeatureModel, dim: int) -> keras.Model:
    """Pooled features (dim,) -> scores: the fitted pipeline as a Keras model of its own."""
    features = keras.Input((dim,), name="features")
    return keras.Model(features, keras_scores(fitted, features), name=f"{fitted.kind}_head")


def keras_scores(fitted: FeatureModel, features: keras.KerasTensor) -> keras.KerasTensor:
    """The fitted scaler and classifier as built-in Keras layers with fixed weights, on `features`."""
    scaler = fitted.scaler
    x = keras.layers.Normalization(mean=scaler.mean_, variance=np.square(scaler.scale_), dtype=EXACT,
                                   name="sk_standardise")(features)
    if fitted.kind == "logreg":
        coef, intercept = fitted.estimator.coef_, fitted.estimator.intercept_
        if coef.shape[0] == 1:                                  # binary: softmax([0, z]) = [1 - p, p]
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        logits = _dense(x, coef.T, intercept, "sk_logits")
    else:
        logits = _svm_decision(fitted.estimator, x)
    return keras.layers.Activation("softmax", dtype="float32", name="predictions")(logits)


def _dense(x: keras.KerasTensor, kernel: np.ndarray, bias: np.ndarray | None, name: str) -> keras.KerasTensor:
    layer = keras.layers.Dense(kernel.shape[1], use_bias=bias is not None, dtype=EXACT, name=name)
    out = layer(x)
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return out


def _svm_decision(ovr: OneVsRestClassifier, x: keras.KerasTensor) -> keras.KerasTensor:
    """Each binary SVC's decision value sum_i a_i K(x, sv_i) + b, over the union of their support vectors."""
    svcs: list[SVC] = list(ovr.estimators_)
    intercepts = np.concatenate([svc.intercept_ for svc in svcs])
    svc0 = svcs[0]
    if svc0.kernel == "linear":
        decision = _dense(x, np.vstack([svc.coef_ for svc in svcs]).T, intercepts, "sk_decision")
    else:
        vectors = {int(i): v for svc in svcs for i, v in zip(svc.support_, svc.support_vectors_)}
        order = sorted(vectors)
        position = {row: k for k, row in enumerate(order)}
        support = np.stack([vectors[row] for row in order])               # (n_sv, features)
        dual = np.zeros((len(order), len(svcs)))
        for j, svc in enumerate(svcs):
            dual[[position[int(i)] for i in svc.support_], j] = svc.dual_coef_[0]
        kernel = _rbf(x, support, svc0.gamma) if svc0.kernel == "rbf" else \
            _poly(x, support, svc0.gamma, svc0.coef0, svc0.degree)
        decision = _dense(kernel, dual, intercepts, "sk_decision")
    if len(svcs) == 1:                                               # binary: one SVC, scores [-d, d]
        decision = _dense(decision, np.array([[-1.0, 1.0]]), None, "sk_two_columns")
    return decision


def _rbf(x: keras.KerasTensor, support: np.ndarray, gamma: float) -> keras.KerasTensor:
    """exp(-gamma |x - s|^2) = exp(2 gamma x.s - gamma |s|^2 - gamma |x|^2), from built-in layers."""
    cross = _dense(x, 2 * gamma * support.T, -gamma * np.sum(support ** 2, axis=1), "sk_rbf_cross")
    squares = keras.layers.Multiply(dtype=EXACT, name="sk_rbf_square")([x, x])
    norm = _dense(squares, np.full((support.shape[1], 1), -gamma), None, "sk_rbf_norm")
    norms = keras.layers.Flatten(dtype=EXACT, name="sk_rbf_norms")(   # one per support vector: Add does
        keras.layers.RepeatVector(len(support), dtype=EXACT, name="sk_rbf_repeat")(norm))   # not broadcast
    summed = keras.layers.Add(dtype=EXACT, name="sk_rbf_sum")([cross, norms])
    return keras.layers.Activation("exponential", dtype=EXACT, name="sk_rbf_kernel")(summed)


def _poly(x: keras.KerasTensor, support: np.ndarray, gamma: float, coef0: float, degree: int) -> keras.KerasTensor:
    """(gamma x.s + coef0) ** degree, the power as a product of `degree` copies."""
    base = _dense(x, gamma * support.T, np.full(len(support), coef0), "sk_poly_base")
    if degree == 1:
        return base
    return keras.layers.Multiply(dtype=EXACT, name="sk_poly_kernel")([base] * degree)
