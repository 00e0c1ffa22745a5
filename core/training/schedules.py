"""Learning rate per epoch: warm-up, then a constant, step, exponential or cosine schedule; SGD momentum
per epoch (linear decay to a floor).

Epoch-wise rather than Keras's per-step `LearningRateSchedule`s: the schedules of the reports this
project grew from are stated in epochs, a fold's epochs are its unit of progress everywhere else
(live curves, early stopping), and one function serves every optimizer. Keras's
`LearningRateScheduler` callback applies it.
"""
from __future__ import annotations

import math

from core.spec.sweep import TrialParams

STEP_FACTOR = 0.1              # "step": x0.1 after each third of the epochs
EXPONENTIAL_END = 0.01         # "exponential": x0.01 at the last epoch


def learning_rate_at(params: TrialParams, epoch: int) -> float:
    """The learning rate of 0-based `epoch` of a fold of `params.epochs` epochs."""
    base, warmup = params.learning_rate, params.warmup_epochs
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    span = max(params.epochs - warmup - 1, 1)
    t = min((epoch - warmup) / span, 1.0)          # 0 at the first scheduled epoch, 1 at the last
    if params.lr_schedule == "step":
        return base * STEP_FACTOR ** min(int(3 * t), 2)
    if params.lr_schedule == "exponential":
        return base * EXPONENTIAL_END ** t
    if params.lr_schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    return base


def scheduled(params: TrialParams) -> bool:
    """Does the learning rate change by epoch (then ReduceLROnPlateau stays off: the schedule rules)?"""
    return params.lr_schedule != "constant" or params.warmup_epochs > 0


def planned_epochs(params: TrialParams) -> int:
    """Epochs a fold plans for: both stages of a staged trial (`stage1_epochs` + `epochs`), else `epochs`."""
    return params.stage1_epochs + params.epochs


def momentum_at(params: TrialParams, epoch: int) -> float:
    """SGD momentum of 0-based `epoch`, numbered across both stages: linear from `momentum` at the first
    planned epoch to momentum x (1 - momentum_decay) at the last."""
    t = min(epoch / max(planned_epochs(params) - 1, 1), 1.0)
    return params.momentum * (1.0 - params.momentum_decay * t)


def decays_momentum(params: TrialParams) -> bool:
    """Does this trial's momentum change by epoch? SGD only; other optimizers ignore `momentum_decay`."""
    return params.optimizer == "sgd" and params.momentum > 0 and params.momentum_decay > 0
