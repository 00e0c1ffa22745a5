"""What a sweep will train, in words, before it starts (issue 23: the plan a user reads must be the one that runs).

Read from the spec with the predicates the worker and the final refit decide by: which trial kinds keep
their fold models (`core.training.kinds.keeps_fold_models`), whether a fold trains in two stages
(`stage1_epochs` > 0, as `core.training.stages.staged`), and the spec's `ensemble` / `refit` as `core.search.refit.finalize` reads
them. The Sweep page shows it above Launch; `python -m core sweep` prints it when it creates a sweep.
Imports no Keras: the Sweep page never loads TensorFlow.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.spec.space import Choice, format_value
from core.spec.sweep import SweepSpec


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's trainings and its final model, as the spec decides them."""

    trials: int
    folds: int
    fold_models: tuple[str, ...]          # the trial kinds whose fold models an ensemble keeps
    refit_kinds: tuple[str, ...]          # the other kinds the sweep may run (a final refit when one is best)
    ensemble: bool
    refit: bool
    stages: str                           # how a network fold trains; "" when no trial trains a network
    time_limit_s: float = 0.0
    repeats: int = 0                      # grid points that fit what another already fits (`kinds.same_work`)
    partners: bool = False                # more than one trial may keep fold models: the ensemble may join them

    @classmethod
    def of(cls, spec: SweepSpec) -> SweepPlan:
        from core.training.kinds import keeps_fold_models
        kinds = _values(spec, "kind")
        keeps = tuple(k for k in kinds if keeps_fold_models(dataclasses.replace(spec.params, kind=k)))
        trains = any(dataclasses.replace(spec.params, kind=k).trains_network for k in kinds)
        return cls(trials=spec.planned_trials(), folds=spec.folds, fold_models=keeps,
                   refit_kinds=tuple(k for k in kinds if k not in keeps), ensemble=spec.ensemble, refit=spec.refit,
                   stages=_stages(spec) if trains else "", time_limit_s=spec.search.time_limit_s,
                   repeats=_repeats(spec), partners=_fold_model_trials(spec) > 1)

    def final(self) -> str:
        """What becomes the final model, as `refit.finalize` decides it."""
        refit = "1 final refit of the best trial on the whole train part"
        others = " or ".join(self.refit_kinds)
        if not (self.ensemble and self.fold_models):
            return f"then {refit}"
        folds = f"the best trial's {self.folds} fold models"
        if self.partners:
            folds += " (with the next best trials' where their out-of-fold scores say they help)"
        if not self.refit:
            kept = f"{folds} kept as the final model (no refit)"
            return f"{kept}; if the best trial is of kind {others}, {refit}" if others else kept
        variants = f"then {refit}, with {folds} averaged (and with flip TTA) as variants"
        return f"{variants} (none for kind {others})" if others else variants

    def describe(self) -> str:
        """One paragraph: trials x folds, how each network fold trains, the final model, the time limit."""
        fitted = self.trials - self.repeats
        trainings = (f"{fitted} trial{'s' * (fitted != 1)} x {self.folds} folds = {fitted * self.folds} trainings")
        if self.repeats:
            trainings += (f" ({self.repeats} more grid point{'s' * (self.repeats != 1)} the same fit as another, "
                          "not fitted again)")
        parts = [trainings, self.stages, self.final()]
        if self.time_limit_s:
            parts.append(f"within {self.time_limit_s / 60:.0f} min: no trial starts with less than half its "
                         "estimated time left, and a running one ends its current stage at an epoch's end")
        return "; ".join(p for p in parts if p)


def _repeats(spec: SweepSpec) -> int:
    """A grid's points whose trial fits what an earlier one fits (the worker leaves them unfitted)."""
    from core.training.kinds import same_work
    if spec.search.method != "grid":
        return 0
    seen: list = []
    for point in spec.grid()[:spec.planned_trials()]:
        params = spec.trial_params(point)
        if not any(same_work(params, other) for other in seen):
            seen.append(params)
    return spec.planned_trials() - len(seen)


def _fold_model_trials(spec: SweepSpec) -> int:
    """How many of the sweep's trials may keep fold models (`ensemble_members`' candidates)."""
    from core.training.kinds import keeps_fold_models
    if spec.search.method != "grid":
        return spec.planned_trials() if keeps_fold_models(spec.params) or "kind" in spec.search.space else 0
    points = spec.grid()[:spec.planned_trials()]
    return sum(keeps_fold_models(spec.trial_params(point)) for point in points)


def _values(spec: SweepSpec, name: str) -> tuple:
    """The values the sweep's trials may give a parameter: its swept choices, else the spec's one value."""
    dim = spec.search.space.get(name)
    return tuple(dim.values) if isinstance(dim, Choice) else (getattr(spec.params, name),)


def _shown(spec: SweepSpec, name: str) -> str:
    """A parameter as a plan names it: its value, or its swept values or range."""
    dim = spec.search.space.get(name)
    return dim.describe() if dim is not None else format_value(getattr(spec.params, name))


def _stages(spec: SweepSpec) -> str:
    """How each network fold trains: one stage, or the head first and then the top layers with it."""
    epochs, layers = _shown(spec, "epochs"), _shown(spec, "trainable_layers")
    top = "the head alone" if layers == "0" else f"the top {layers} layers with the head"
    if any(e > 0 for e in _values(spec, "stage1_epochs")):
        return (f"each network fold trains the head {_shown(spec, 'stage1_epochs')} epochs on the frozen "
                f"backbone, then {top} up to {epochs} more")
    what = "the head on the frozen backbone" if layers == "0" else f"the head and the top {layers} layers"
    return f"each network fold trains {what} up to {epochs} epoch{'s' * (epochs != '1')}"
