"""One trial: build, compile and fit per CV fold, evaluate, return a TrialResult.

Frozen layers below the cut are read from the activation cache when the trial allows it,
so a fold trains only the layers that change. Knows nothing of Optuna or the store: the
caller passes a `reporter` that sees every epoch (for live curves and pruning).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from core.models.accelerator import configure_device
from core.models.augment import augmenter
from core.models.classifier import Classifier, build_classifier
from core.runs.evaluation import Evaluation
from core.runs.records import FoldResult, OutOfFold, TrialResult
from core.spec.sweep import TrialParams
from core.training.activations import ActivationCache, CacheKey
from core.training.pipeline import training_batches
from core.training.predictions import predict_scores
from core.training.linear_start import fit_convex_start, starts_convex
from core.training.momentum import VariableMomentumSGD
from core.training.schedules import decays_momentum, learning_rate_at, scheduled
from core.training.stages import (
    Deadline,
    Stage,
    fine_tune_stage,
    head_stage,
    stage_callbacks,
    staged,
    untrainable,
)

Reporter = Callable[[int, int, dict], None]   # (fold, epoch, logs) after every epoch


@dataclass(frozen=True)
class TrainedFold:
    """A fold's classifier as its training ends; the next fold resets `model`, so keep what you need now.

    `cut`: the single tensor below which it is frozen (what a fold ensemble shares). `source`: what it trained
    on, un-augmented: what `reads` names (on cached activations: the cut, or a packed frontier inside a
    residual block, `core.models.frontier`) or the images (`reads` None).
    """

    fold: int
    model: keras.Model
    cut: str
    reads: str | None
    source: np.ndarray


OnFold = Callable[[TrainedFold], None]


@dataclass
class TrialData:
    """The images of one dataset at one size, with the train part and its CV folds."""

    images: np.ndarray                 # uint8 (N, S, S, 3), usually a memmap of the decoded-image cache
    labels: np.ndarray                 # int (N,)
    classes: list[str]
    train_rows: np.ndarray             # rows of the train part (CV runs inside it)
    test_rows: np.ndarray              # rows held out for the final test
    folds: list[tuple[np.ndarray, np.ndarray]]   # (train, val) rows, absolute
    fingerprint: str                   # dataset content hash, part of the cache key
    paths: list[str] = field(default_factory=list)

    def out_of_fold(self, scored: list[tuple[np.ndarray, np.ndarray]]) -> OutOfFold:
        """The OutOfFold record of (validation rows, their scores) per fold, in fold order."""
        rows = np.concatenate([r for r, _ in scored])
        paths = [self.paths[r] for r in rows] if self.paths else [str(r) for r in rows]
        return OutOfFold(paths=paths, labels=self.labels[rows], classes=list(self.classes),
                         folds=np.concatenate([np.full(len(r), k) for k, (r, _) in enumerate(scored)]),
                         scores=np.concatenate([s for _, s in scored]))


class _Validation(keras.callbacks.Callback):
    """Each epoch's `val_loss` and `val_accuracy` (as Keras's own validation computes them: the mean
    crossentropy plus the model's regularization losses), written into the epoch's logs before the
    callbacks after it read them. Predicted in fixed batches (`predict_fixed`), so unlike Keras's
    evaluation no fold's odd-sized last batch retraces the compiled step."""

    def __init__(self, source: np.ndarray, labels: np.ndarray, rows: np.ndarray):
        super().__init__()
        self.source, self.labels, self.rows = source, labels[rows], rows
        self.probabilities: np.ndarray | None = None       # of the model as last scored

    def scores(self, model: keras.Model) -> dict[str, float]:
        probabilities = self.probabilities = predict_scores(model, self.source, self.rows)
        picked = np.clip(probabilities[np.arange(len(self.rows)), self.labels], 1e-7, 1 - 1e-7)
        penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
        return {"val_loss": float(-np.log(picked).mean()) + penalty,
                "val_accuracy": float((probabilities.argmax(axis=1) == self.labels).mean())}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self.scores(self.model))


class _BestEpoch(keras.callbacks.Callback):
    """Keep the weights of the epoch with the lowest validation loss and restore them at the end, with that
    epoch's validation scores (`probabilities`: the fold's out-of-fold scores, without predicting again).

    `start`: the model as it starts (a convex start, `linear_start`) is kept unless an epoch beats it on
    validation loss without losing validation accuracy; then the best epoch is -1 (before the first).
    """

    def __init__(self, validation: _Validation, model: keras.Model | None = None):
        super().__init__()
        self.validation = validation
        self.best_loss, self.best_epoch, self.weights = np.inf, 0, None
        self.probabilities: np.ndarray | None = None
        self.floor = -np.inf            # the validation accuracy an epoch must keep
        if model is not None:
            logs = validation.scores(model)
            self.best_loss, self.best_epoch, self.weights = logs["val_loss"], -1, _snapshot(model.weights)
            self.floor, self.probabilities = logs["val_accuracy"], validation.probabilities

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        loss = logs.get("val_loss", np.inf)
        if loss < self.best_loss and logs.get("val_accuracy", np.inf) >= self.floor:
            self.best_loss, self.best_epoch, self.weights = loss, epoch, _snapshot(self.model.weights)
            self.probabilities = self.validation.probabilities

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.weights is not None:
            _restore(self.model.weights, self.weights)


def _snapshot(variables: list) -> list:
    """Copies of `variables`' values, kept as tensors: restoring them is an assign each, where
    `set_weights` converts every numpy array into a new tensor first."""
    return [keras.ops.copy(variable.value) for variable in variables]


def _restore(variables: list, values: list) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


class _EpochReport(keras.callbacks.Callback):
    def __init__(self, reporter: Reporter, fold: int):
        super().__init__()
        self.reporter, self.fold = reporter, fold

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.reporter(self.fold, epoch, {k: float(v) for k, v in (logs or {}).items()})


def make_optimizer(params: TrialParams) -> keras.optimizers.Optimizer:
    lr = params.learning_rate
    if decays_momentum(params):
        return VariableMomentumSGD(lr, momentum=params.momentum)
    return {
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=params.momentum),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, momentum=params.momentum),
        "adam": lambda: keras.optimizers.Adam(lr),
        "nadam": lambda: keras.optimizers.Nadam(lr),
        "adadelta": lambda: keras.optimizers.Adadelta(lr),
    }[params.optimizer]()


@dataclass(frozen=True)
class _Fitted:
    """A fold's fit: its curves, its best epoch, and its validation rows' scores as the fit ends (None where
    nothing kept them: no validation rows or no best epoch kept)."""

    curves: dict[str, list[float]]
    best_epoch: int
    val_scores: np.ndarray | None


@dataclass
class _Head:
    """Stage 1 of a staged trial, ready to fit: the head on the frozen backbone (`frozen`: stage 2's layers,
    kept frozen while it fits when it reads images rather than the cache)."""

    stage: Stage
    model: keras.Model
    sources: list[np.ndarray]
    transform: keras.Sequential | None
    restart: Callable[[], None]
    frozen: list[keras.layers.Layer]


class TrialRunner:
    """Runs trials of one sweep on one TrialData, sharing the activation cache between them."""

    def __init__(self, data: TrialData, cache: ActivationCache | None, seed: int = 0,
                 weights_id: Callable[[TrialParams], str] | None = None,
                 cache_progress: Callable[[int, int], None] | None = None):
        self.data, self.cache, self.seed, self.cache_progress = data, cache, seed, cache_progress
        self.weights_id = weights_id or (lambda p: f"{p.weights}:{p.backbone}")
        self.device = configure_device()
        self.deadline: Deadline | None = None     # the sweep's time budget: stages end by it (`Deadline`)

    def run(self, params: TrialParams, reporter: Reporter | None = None, base_cut: str | None = None,
            on_fold: OnFold | None = None) -> TrialResult:
        """K-fold CV of one configuration; the trial's value is the mean validation error.

        `base_cut`: the sweep's lowest cut. The backbone then runs once, up to it, for every
        trial; a trial that cuts higher derives its own cache from that one.
        `on_fold`: sees each fold's trained classifier (`TrainedFold`), for the fold ensemble or features.
        """
        started = time.monotonic()
        clf = build_classifier(params, len(self.data.classes), seed=self.seed)
        model, sources, transform, state = self._inputs(clf, params, base_cut)
        head = self._head(clf, params, base_cut)
        restart = self._compile(model, fine_tune_stage(params).params)
        folds, oof = [], []
        for fold, (train_rows, val_rows) in enumerate(self.data.folds):
            restart()
            fitted = self._fit(model, params, sources, transform, train_rows, val_rows, fold, reporter, head)
            curves, best_epoch = fitted.curves, fitted.best_epoch
            scores = fitted.val_scores if fitted.val_scores is not None else predict_scores(
                model, sources[0], val_rows)
            evaluation = Evaluation(self.data.classes, self.data.labels[val_rows], scores)
            folds.append(FoldResult(fold=fold, val_error=1.0 - evaluation.accuracy(), best_epoch=best_epoch,
                                    curves=curves, summary=evaluation.summary()))
            oof.append((val_rows, scores))
            if on_fold is not None:
                on_fold(_trained(fold, clf, model, sources[0]))
        return TrialResult(folds=folds, cache=state, cut=clf.reads if state != "off" else "",
                           duration_s=time.monotonic() - started, oof=self.data.out_of_fold(oof))

    def refit(self, params: TrialParams, epochs: int, base_cut: str | None = None,
              reporter: Reporter | None = None, on_fit: OnFold | None = None
              ) -> tuple[Classifier, Evaluation, Evaluation]:
        """Train on the whole train part for `epochs` (`reporter` sees each), then evaluate on test and train;
        `on_fit` as `run`'s `on_fold`, fold 0.

        A staged trial's `epochs` count both stages: stage 1 runs its `stage1_epochs`, stage 2 the rest
        (at least one). A convex-start trial (`linear_start`) with 0 epochs is its convex fit alone.
        """
        clf = build_classifier(params, len(self.data.classes), seed=self.seed)
        model, sources, transform, _ = self._inputs(clf, params, base_cut)
        final = dataclasses.replace(params, epochs=max(1, epochs - params.stage1_epochs), early_stopping=0,
                                    reduce_lr=0)
        head = self._head(clf, final, base_cut)
        self._compile(model, fine_tune_stage(final).params)
        if epochs or not starts_convex(params):
            self._fit(model, final, sources, transform, self.data.train_rows, None, 0, reporter, head)
        else:                                    # its folds kept their convex start: that fit alone
            fit_convex_start(model, params, sources, self.data.labels, self.data.train_rows)
        if on_fit is not None:
            on_fit(_trained(0, clf, model, sources[0]))
        evaluations = []
        for rows in (self.data.test_rows, self.data.train_rows):
            scores = predict_scores(model, sources[0], rows)
            paths = [self.data.paths[r] for r in rows] if self.data.paths else None
            evaluations.append(Evaluation(self.data.classes, self.data.labels[rows], scores, paths=paths))
        return clf, evaluations[0], evaluations[1]

    def pooled_features(self, params: TrialParams) -> np.ndarray:
        """Every image's frozen, pooled backbone features (N, D): the activation cache of a frozen
        trial, read by the scikit-learn trial kinds and the quality benchmark's probe."""
        frozen = dataclasses.replace(params, trainable_layers=0, augmentation="none")
        clf = build_classifier(frozen, len(self.data.classes), seed=self.seed)
        if self.cache is None:
            return predict_scores(clf.bottom_model(), self.data.images, np.arange(len(self.data.images)))
        _, sources, _, _ = self._inputs(clf, frozen, None)
        return np.asarray(sources[0], dtype=np.float64)

    def _inputs(self, clf: Classifier, params: TrialParams, base_cut: str | None):
        """The model to fit and what it reads: cached activations, or images (augmented on the fly)."""
        views = params.augment_views if params.augmentation != "none" else 0
        if self.cache is None or not clf.cacheable:
            return clf.model, [self.data.images], augmenter(params.augmentation, self.seed), "off"
        key = CacheKey(dataset=self.data.fingerprint, backbone=params.backbone, weights=self.weights_id(params),
                       image_size=params.image_size, cut=clf.reads, augmentation=params.augmentation,
                       views=views, seed=self.seed, precision=self.device.precision)
        if base_cut and clf.lies_below(base_cut):
            base = self.cache.get(dataclasses.replace(key, cut=base_cut), clf.bottom_model(base_cut),
                                  self.data.images, self.cache_progress)
            cached = self.cache.get(key, clf.segment_model(base_cut), base, self.cache_progress)
        else:
            cached = self.cache.get(key, clf.bottom_model(), self.data.images, self.cache_progress)
        sources = [cached.originals] + (list(cached.views) if cached.views is not None else [])
        return clf.top_model(), sources, None, "hit" if cached.hit else "miss"

    def _compile(self, model: keras.Model, params: TrialParams) -> Callable[[], None]:
        """Compile once per trial and return a reset to the untrained state for each fold.

        Every fold starts from the same weights and a fresh optimizer, but one model and one
        traced train step serve all folds: tracing costs more than a small head's whole fit. The metric is
        an object made here, not the string "accuracy": Keras makes a named metric's variables inside the
        first trace of the train step, and TensorFlow then traces it a second time (under XLA, compiles it
        twice) because a first trace made variables.
        """
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        model.compile(optimizer=make_optimizer(params), loss="sparse_categorical_crossentropy",
                      metrics=[accuracy], jit_compile=self.device.xla,
                      steps_per_execution=self.device.steps_per_execution)
        model.optimizer.build(model.trainable_variables)
        variables = [*model.weights, *model.optimizer.variables]
        start = _snapshot(variables)
        return lambda: _restore(variables, start)

    def _head(self, clf: Classifier, params: TrialParams, base_cut: str | None) -> _Head | None:
        """Stage 1 of a staged trial, compiled (before any fit: its reset must hold untrained weights);
        None for a one-stage trial."""
        if not staged(params):
            return None
        stage = head_stage(params)
        model, sources, transform, _ = self._inputs(clf.frozen_view(), stage.params, base_cut)
        frozen: list[keras.layers.Layer] = []
        if model is clf.model:      # no cache: images through the classifier, with an optimizer of its own
            model = keras.Model(model.input, model.output, name="head_stage")
            frozen = [clf.model.get_layer(name) for name in clf.trainable]
        with untrainable(frozen):
            restart = self._compile(model, stage.params)
        return _Head(stage, model, sources, transform, restart, frozen)

    def _fit(self, model: keras.Model, params: TrialParams, sources: list[np.ndarray], transform,
             train_rows: np.ndarray, val_rows: np.ndarray | None, fold: int,
             reporter: Reporter | None, head: _Head | None = None) -> _Fitted:
        """One fold's fit: stage 1 on `head` first when the trial is staged, then `model`; the curves of
        both stages joined, the best epoch numbered across them."""
        first: dict[str, list[float]] = {}
        if starts_convex(params):
            fit_convex_start(model, params, sources, self.data.labels, train_rows)
        if head is not None:
            head.restart()
            with untrainable(head.frozen):
                first = self._fit_stage(head.model, head.stage, head.sources, head.transform, train_rows,
                                        val_rows, fold, reporter).curves
        fitted = self._fit_stage(model, fine_tune_stage(params), sources, transform, train_rows, val_rows, fold,
                                 reporter)
        return dataclasses.replace(fitted, curves={key: first.get(key, []) + values
                                                   for key, values in fitted.curves.items()})

    def _fit_stage(self, model: keras.Model, stage: Stage, sources: list[np.ndarray], transform,
                   train_rows: np.ndarray, val_rows: np.ndarray | None, fold: int,
                   reporter: Reporter | None) -> _Fitted:
        params = stage.params
        train = training_batches(sources, self.data.labels, train_rows, params.batch_size,
                                 seed=self.seed + fold, transform=transform)
        callbacks = stage_callbacks(stage)
        if self.deadline is not None:
            callbacks.append(self.deadline.callback(fold, stage))
        validation, best = None, None
        if val_rows is not None:
            validation = _Validation(sources[0], self.data.labels, val_rows)
            callbacks.insert(0, validation)                 # its logs first, for every callback after it
            if stage.restore_best:
                best = _BestEpoch(validation, model if starts_convex(stage.trial) else None)
                callbacks.append(best)
            if params.early_stopping:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.early_stopping))
            if params.reduce_lr and not scheduled(params):
                callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                                   patience=params.reduce_lr))
        if scheduled(params):
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda epoch: learning_rate_at(params, epoch - stage.first_epoch)))
        if reporter is not None:
            callbacks.append(_EpochReport(reporter, fold))
        history = model.fit(train, initial_epoch=stage.first_epoch,
                            epochs=stage.last_epoch + 1, callbacks=callbacks, shuffle=False, verbose=0)   # shuffled by the pipeline
        curves = {k: [float(v) for v in values] for k, values in history.history.items()}
        if best is None:
            return _Fitted(curves, stage.last_epoch, None)
        return _Fitted(curves, best.best_epoch, best.probabilities)


def _trained(fold: int, clf: Classifier, fitted: keras.Model, source: np.ndarray) -> TrainedFold:
    """`clf` as trained through `fitted` (the classifier itself, reading images, or its top, reading the cut)."""
    return TrainedFold(fold, clf.model, clf.cut, None if fitted is clf.model else clf.reads, source)
