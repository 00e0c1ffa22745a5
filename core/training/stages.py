"""Staged fine-tuning (the ResNet101 report): the head first, then the top of the backbone, in one trial.

With `stage1_epochs` = E1 > 0, every fold (and the refit) fits twice:

- stage 1 trains the head alone on the frozen backbone (from the activation cache at the pooled
  features) for all E1 epochs, at `learning_rate`, constant: no schedule, warm-up, early stopping,
  reduce_lr or best-epoch restore; it only gives stage 2 a trained head to start from;
- stage 2 unfreezes the top `trainable_layers` (0: the head goes on alone) and trains for up to
  `epochs` at learning_rate x `stage2_lr_factor`, with the schedule, warm-up, early stopping,
  reduce_lr and best-epoch restore of a one-stage trial. Its model holds the very head layers stage 1
  trained (stage 1's model is a view of the same classifier), so the head carries over.

Epochs are numbered on across the stages (stage 2's first epoch is E1), in the curves, the live
record and a fold's best epoch; each epoch's logs carry `stage` (1 or 2, what the learning-curve
chart draws its line from) and the optimizer's `learning_rate`. A one-stage trial is unchanged.

A sweep with a time budget gives its trials a `Deadline`: any stage (of a staged trial or not) ends at an
epoch boundary, rather than mid-fold, once its next epoch would end past its fold's share of the time left.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import keras
from keras import ops

from core.spec.sweep import TrialParams
from core.training.momentum import MomentumSchedule
from core.training.schedules import decays_momentum, momentum_at


@dataclass(frozen=True)
class Stage:
    """One `model.fit` of a fold: its own params (its epochs, its learning rate), where its epochs start,
    its mark in the curves (0: a one-stage trial, no mark) and the whole trial's params."""

    params: TrialParams
    trial: TrialParams
    first_epoch: int = 0
    number: int = 0
    restore_best: bool = True

    @property
    def last_epoch(self) -> int:
        return self.first_epoch + self.params.epochs - 1


def staged(params: TrialParams) -> bool:
    return params.stage1_epochs > 0


def head_stage(params: TrialParams) -> Stage:
    """Stage 1: the head alone, at the base rate, for every one of its epochs."""
    own = dataclasses.replace(params, trainable_layers=0, epochs=params.stage1_epochs, lr_schedule="constant",
                              warmup_epochs=0, early_stopping=0, reduce_lr=0)
    return Stage(own, params, number=1, restore_best=False)


def fine_tune_stage(params: TrialParams) -> Stage:
    """Stage 2 of a staged trial (the lower rate, its epochs after stage 1's), or a one-stage trial's fit."""
    if not staged(params):
        return Stage(params, params, restore_best=params.restore_best)
    own = dataclasses.replace(params, learning_rate=params.learning_rate * params.stage2_lr_factor)
    return Stage(own, params, first_epoch=params.stage1_epochs, number=2, restore_best=params.restore_best)


class StageMark(keras.callbacks.Callback):
    """Adds the stage and the optimizer's learning rate to every epoch's logs (before anyone reads them)."""

    def __init__(self, number: int):
        super().__init__()
        self.number = number

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["stage"] = float(self.number)
            logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


def stage_callbacks(stage: Stage) -> list[keras.callbacks.Callback]:
    """The callbacks that must run first in a stage's fit: they write logs the others and the curves read."""
    callbacks: list[keras.callbacks.Callback] = [StageMark(stage.number)] if stage.number else []
    if decays_momentum(stage.trial):
        callbacks.append(MomentumSchedule(lambda epoch: momentum_at(stage.trial, epoch)))
    return callbacks


class Deadline:
    """When a trial's training must be over (unix time `at`, from the sweep's time budget), shared out among its
    `folds`: each fold, as it starts, gets an equal part of the time left, so a late trial trains every fold a
    little rather than its first fold long. A stage whose next epoch would end past its fold's part stops at
    that epoch boundary (`StageDeadline`); every stage runs at least one epoch. `note` says where it cut."""

    def __init__(self, at: float, folds: int, clock: Callable[[], float] = time.time):
        self.at, self.folds, self.clock = at, folds, clock
        self.fold_ends: dict[int, float] = {}
        self.cuts: list[tuple[int, int, int, int]] = []      # (fold, stage number, epochs run, planned)

    def fold_end(self, fold: int) -> float:
        if fold not in self.fold_ends:
            now = self.clock()
            self.fold_ends[fold] = now + max(self.at - now, 0.0) / max(self.folds - fold, 1)
        return self.fold_ends[fold]

    def callback(self, fold: int, stage: Stage) -> StageDeadline:
        return StageDeadline(self, fold, stage)

    def where(self) -> str:
        """Where it cut: "fold 1 stage 2 after 3 of 8 epochs, ..." ("stage 2 after ..." with one fold)."""
        return ", ".join(" ".join(filter(None, [f"fold {fold + 1}" if self.folds > 1 else "",
                                                f"stage {stage}" if stage else "",
                                                f"after {run} of {planned} epochs"]))
                         for fold, stage, run, planned in self.cuts)

    def note(self) -> str:
        """"" when no stage was cut; else "budget reached: fold 1 stage 2 after 3 of 8 epochs, ..."."""
        return f"budget reached: {self.where()}" if self.cuts else ""


class StageDeadline(keras.callbacks.Callback):
    """Ends its stage's fit at the epoch boundary after which one more epoch (as long as the last) would end past
    its fold's part of the `Deadline`. A stage's first epoch holds the tracing of its train step (seconds, where
    an epoch on cached features takes a fraction of one), so it stops a stage only once past its part."""

    def __init__(self, deadline: Deadline, fold: int, stage: Stage):
        super().__init__()
        self.deadline, self.fold, self.stage = deadline, fold, stage
        self.end = deadline.fold_end(fold)
        self.epoch_began = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_began = self.deadline.clock()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.deadline.clock()
        run = epoch - self.stage.first_epoch + 1
        took = now - self.epoch_began if run > 1 else 0.0
        if run < self.stage.params.epochs and now + took > self.end:
            self.model.stop_training = True
            self.deadline.cuts.append((self.fold, self.stage.number, run, self.stage.params.epochs))


@contextmanager
def untrainable(layers: list[keras.layers.Layer]) -> Iterator[None]:
    """Layers frozen for a while: stage 1 without a cache runs the images through the whole classifier,
    whose top backbone layers train in stage 2. Keras reads `trainable` when it builds the optimizer
    and traces the train step, so stage 1's compile and fits run inside this."""
    saved = [layer.trainable for layer in layers]
    for layer in layers:
        layer.trainable = False
    try:
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.trainable = value
