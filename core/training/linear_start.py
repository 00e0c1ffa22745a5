"""A frozen backbone's linear head starts at the solution of its convex problem, not at random.

With the backbone frozen, the linear head is multinomial logistic regression on the pooled features: a
well-posed convex problem that a few epochs of Adam on raw features leave far from solved on a small
dataset (the issue-20 default lost 1.8 points to a scikit-learn probe). So each fold (and the refit)
first fits it exactly: the fold's train rows' features (every cached view too) standardised on those rows,
then L2-regularised logistic regression by L-BFGS (`logreg_c`, scikit-learn's), and the standardisation
folded into the head's Dense weights. The configured epochs then train on from there, as before (curves,
schedules, pruning, early stopping unchanged), and the fold keeps its start when no epoch beats it on
validation loss. The saved model is the same plain Keras model: backbone, Dense.

`standardiser` is also the scikit-learn trial kinds' (`features_kinds`): one scaler rule for both.
"""
from __future__ import annotations

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from core.spec.sweep import TrialParams
from core.training.predictions import predict_scores

PREDICTIONS = "predictions"      # the head's output layer (core.models.heads): its input is the features
LOGREG_MAX_ITER = 2000
ABSENT_LOGIT = -30.0             # a class missing from a fold's train rows: never predicted


def standardiser(features: np.ndarray) -> StandardScaler:
    """A scaler fitted on these rows. Keras's Normalization divides by at least its epsilon; a feature that
    barely varies (random weights, a dead channel) is divided by the same here, so both give equal numbers."""
    scaler = StandardScaler().fit(features)
    scaler.scale_ = np.maximum(scaler.scale_, keras.config.epsilon())
    return scaler


def logistic_regression(params: TrialParams) -> LogisticRegression:
    return LogisticRegression(C=params.logreg_c, max_iter=LOGREG_MAX_ITER)


def starts_convex(params: TrialParams) -> bool:
    """Trials whose whole trained part is a linear head on frozen features: one stage, nothing unfrozen."""
    return params.head == "linear" and params.trainable_layers == 0 and params.stage1_epochs == 0


def head_features(model: keras.Model, sources: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The head's input for `rows` of every source (originals, then cached views), stacked: read as they
    are when `model` reads the features (the cache at the pooled cut), else computed through the backbone."""
    if len(model.inputs[0].shape) == 2:                 # the top above the pooled cut: the head alone
        return np.concatenate([np.asarray(s[rows], dtype=np.float64) for s in sources])
    return predict_scores(keras.Model(model.input, model.get_layer(PREDICTIONS).input), sources[0], rows)


def fit_convex_start(model: keras.Model, params: TrialParams, sources: list[np.ndarray], labels: np.ndarray,
                     rows: np.ndarray) -> None:
    """Set `model`'s linear head to the standardised L2 logistic regression of `rows` (every source's)."""
    x = head_features(model, sources, rows)
    y = np.tile(labels[rows], len(x) // len(rows))
    scaler = standardiser(x)
    fitted = logistic_regression(params).fit(scaler.transform(x), y)
    dense = model.get_layer(PREDICTIONS)
    n_classes = dense.units
    coef, intercept = fitted.coef_, fitted.intercept_
    if coef.shape[0] == 1:                                  # binary: softmax([0, z]) = [1 - p, p]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    kernel = np.zeros((x.shape[1], n_classes))
    bias = np.full(n_classes, ABSENT_LOGIT)
    kernel[:, fitted.classes_] = (coef / scaler.scale_).T
    bias[fitted.classes_] = intercept - (scaler.mean_ / scaler.scale_) @ coef.T
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
