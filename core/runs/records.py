"""Typed run records: a trial's result and folds, its live progress, the sweep's final model.

Each record has a JSON form (`to_json` / `from_json`). The store keeps that form in Optuna's
attributes and hands out these records, so nothing outside `core.runs` reads a record by key
(keras-tuner's `Trial.get_state` / `from_state` in spirit).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.files import written_whole

if TYPE_CHECKING:
    from core.runs.evaluation import Evaluation

Curves = dict[str, list[float]]            # metric name -> one value per epoch


class TrialState(str, Enum):
    """Where a trial is in its life; the one list of states the store, charts and pages share."""

    COMPLETE = "COMPLETE"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    PRUNED = "PRUNED"
    FAIL = "FAIL"

    @classmethod
    def of(cls, optuna_state: Any) -> TrialState:
        return cls(optuna_state.name)


class SweepStatus(str, Enum):
    """The sweep's own status, beside its trials' states."""

    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"        # for a reason a retry cannot fix (`SweepRecord.failure` says which)


@dataclass
class FoldResult:
    """One CV fold of a trial: its validation error, best epoch, curves and metric summary."""

    fold: int
    val_error: float
    best_epoch: int
    curves: Curves
    summary: dict[str, Any]          # `Evaluation.summary()` of the fold's validation part

    @property
    def accuracy(self) -> float:
        return float(self.summary["accuracy"])

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])

    @property
    def confusion(self) -> np.ndarray:
        return np.asarray(self.summary["confusion"], dtype=np.int64)


@dataclass
class OutOfFold:
    """Every training image's out-of-sample class probabilities: each image scored by the fold model
    that did not see it. Kept beside the trial (an artifact file, not the database: it grows with
    the dataset) for the label-quality ranking."""

    paths: list[str]                   # image files, as the dataset lists them
    labels: np.ndarray                 # int (n,): given label of each image
    classes: list[str]
    folds: np.ndarray                  # int (n,): the fold that held each image out
    scores: np.ndarray                 # float (n, classes): that fold model's probabilities

    def save(self, path: Path) -> None:
        """Write whole or not at all: a reader never sees half a file."""
        with written_whole(path, mode=0o666) as temporary, open(temporary, "wb") as out:
            np.savez_compressed(out, paths=np.asarray(self.paths, dtype=str), labels=self.labels,
                                classes=np.asarray(self.classes, dtype=str), folds=self.folds,
                                scores=self.scores.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        with np.load(path, allow_pickle=False) as data:
            return cls(paths=data["paths"].tolist(), labels=data["labels"], classes=data["classes"].tolist(),
                       folds=data["folds"], scores=data["scores"].astype(np.float64))


@dataclass
class TrialResult:
    """A completed trial: its folds, where its frozen activations came from, and its cost."""

    folds: list[FoldResult]
    cache: str            # "hit", "miss" or "off": where the frozen activations came from
    cut: str
    duration_s: float
    oof: OutOfFold | None = field(default=None, compare=False, repr=False)   # not part of the JSON form
    # What the trial cost, for the backbone comparison (0: not measured, as in trials run before).
    params_total: int = 0              # the classifier's parameters
    params_trained: int = 0            # those its training updated
    backbone_images_per_s: float = 0.0   # its backbone pass to the cache (0: every activation a cache hit)
    peak_memory_mb: float = 0.0        # the worker's peak resident memory during the trial
    stopped_early: str = ""            # why its training ended before its planned epochs ("budget reached ...")

    @property
    def value(self) -> float:
        return float(np.mean([f.val_error for f in self.folds]))

    @property
    def value_std(self) -> float:
        return float(np.std([f.val_error for f in self.folds]))

    @property
    def mean_best_epoch(self) -> float:
        return float(np.mean([f.best_epoch for f in self.folds]))

    def curves(self) -> dict[str, Curves]:
        """Per-epoch curves by fold label ("fold 1", ...)."""
        return {f"fold {f.fold + 1}": f.curves for f in self.folds}

    def validation_confusion(self) -> np.ndarray:
        """The folds' validation confusion matrices summed: every training image counted once."""
        return np.sum([f.confusion for f in self.folds], axis=0)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, oof=None))
        del data["oof"]
        return data | {"value": self.value, "value_std": self.value_std}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        return cls(folds=[FoldResult(**f) for f in data["folds"]], cache=data.get("cache", ""),
                   cut=data.get("cut", ""), duration_s=float(data.get("duration_s", 0.0)),
                   params_total=int(data.get("params_total", 0)),
                   params_trained=int(data.get("params_trained", 0)),
                   backbone_images_per_s=float(data.get("backbone_images_per_s", 0.0)),
                   peak_memory_mb=float(data.get("peak_memory_mb", 0.0)),
                   stopped_early=str(data.get("stopped_early", "")))


@dataclass
class StepProgress:
    """A long step inside a trial or a sweep (decoding images, a backbone pass, the refit, the test
    evaluation): how far it is and how fast it goes."""

    label: str
    done: int
    total: int
    rate: float = 0.0                  # items (images, epochs) per second so far

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepProgress:
        return cls(label=str(data["label"]), done=int(data["done"]), total=int(data["total"]),
                   rate=float(data.get("rate", 0.0)))


@dataclass
class LiveProgress:
    """A running trial's position and its curves so far, rewritten after every epoch and, a few
    seconds apart, while a long step (`step`) runs before the first epoch."""

    fold: int
    epoch: int
    curves: dict[str, Curves] = field(default_factory=dict)   # fold label -> curves
    folds: int = 0                     # planned folds and epochs per fold (0: not known yet)
    epochs: int = 0
    epochs_done: int = 0               # epochs finished over all folds
    first_epoch_at: float = 0.0        # unix time the trial's first epoch ended
    last_epoch_at: float = 0.0
    step: StepProgress | None = None   # the long step running now, if any

    def epoch_error(self, epoch: int) -> float | None:
        """The folds' mean validation error (1 - val_accuracy) at `epoch`, once every fold has reached it:
        folds run one after another, so from the last fold on; a fold that stopped early counts with its
        last epoch. None before then. What the store reports to Optuna, one step per epoch."""
        curves = [self.curves.get(f"fold {k + 1}", {}).get("val_accuracy", []) for k in range(self.folds)]
        if not curves or not all(curves) or len(curves[-1]) <= epoch:
            return None
        return float(np.mean([1.0 - c[min(epoch, len(c) - 1)] for c in curves]))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveProgress:
        step = data.get("step")
        return cls(fold=int(data["fold"]), epoch=int(data["epoch"]), curves=data.get("curves", {}),
                   folds=int(data.get("folds", 0)), epochs=int(data.get("epochs", 0)),
                   epochs_done=int(data.get("epochs_done", 0)),
                   first_epoch_at=float(data.get("first_epoch_at", 0.0)),
                   last_epoch_at=float(data.get("last_epoch_at", 0.0)),
                   step=StepProgress.from_json(step) if step else None)


VARIANTS = {"single": "single refit", "ensemble": "fold ensemble", "ensemble_tta": "fold ensemble + flip TTA"}
"""The final model's variants, by name, with their labels."""


@dataclass
class ModelVariant:
    """One form of the final model (`VARIANTS`): its saved file and how it did on the test split."""

    name: str
    model_path: str                    # an artifact reference (`RunStore.model_file` makes it a file)
    test: dict[str, Any]               # `Evaluation.to_json()` of the test split
    test_accuracy: float

    @property
    def label(self) -> str:
        return VARIANTS.get(self.name, self.name)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelVariant:
        return cls(name=str(data["name"]), model_path=str(data["model_path"]), test=data["test"],
                   test_accuracy=float(data["test_accuracy"]))


@dataclass
class FinalModel:
    """The best configuration refit on the whole train part, and how it did on test.

    With the sweep's `ensemble` option, `variants` also holds the K fold models' average with and
    without flip TTA (of the best trial and the partners in `ensemble_trials`, when any joined).
    `model_path`, `test` and `test_accuracy` are always those of the `chosen` variant, which Predict and
    export use: the single refit until the user picks another (the test split is for reporting; choosing
    by it would make its figure optimistic). `train` is the single refit's. Without a refit (`epochs` 0,
    no "single" variant) the fold ensemble is chosen, and `train` holds its trials' out-of-fold scores.
    """

    trial: int
    cv_error: float
    params: dict[str, Any]
    epochs: int
    model_path: str                    # the chosen variant's artifact reference, or a path from before
    test: dict[str, Any]               # `Evaluation.to_json()` of the test split
    train: dict[str, Any]              # the same, of the train part
    test_accuracy: float
    created: str
    variants: list[ModelVariant] = field(default_factory=list)   # empty: the single refit only
    chosen: str = "single"
    ensemble_trials: list[int] = field(default_factory=list)     # trials whose fold models the ensemble averages
    why: str = ""                      # why `trial` is not the lowest CV error (`core.search.final_trial`)

    @property
    def label(self) -> str:
        """What the chosen variant is, in words ("single refit", "fold ensemble", ...)."""
        return VARIANTS.get(self.chosen, self.chosen)

    def describe(self) -> str:
        """How the final model was made, for the pages."""
        if self.variants and all(v.name != "single" for v in self.variants):
            made = (f"the fold models of trials {', '.join(map(str, self.ensemble_trials))}, no refit"
                    if len(self.ensemble_trials) > 1 else f"trial {self.trial}'s own fold models, no refit")
        elif self.epochs:
            made = f"refit on the whole train part for {self.epochs} epochs"
        else:
            made = "fitted on the whole train part"
        return made + (f"; chosen: {self.label}" if self.variants else "")

    def oof_trials(self) -> list[int]:
        """The trials whose out-of-fold scores, averaged, stand for this model's: the ensemble's members when
        there is no refit (the fold ensemble is the model), else the one trial refit."""
        no_refit = self.variants and all(v.name != "single" for v in self.variants)
        return self.ensemble_trials if no_refit and self.ensemble_trials else [self.trial]

    def evaluation(self, split: str) -> Evaluation | None:
        """The typed evaluation of `split`: "test" (the chosen variant's) or "train" (the single refit's fit,
        or without a refit the trial's out-of-fold scores); None where the record holds none."""
        from core.runs.evaluation import Evaluation    # on use: scikit-learn is not for every reader of a record
        if split not in ("test", "train"):
            raise ValueError(f"final model: no split {split!r} (there is test and train)")
        data = self.test if split == "test" else self.train
        return Evaluation.from_json(data) if data else None

    def choose(self, name: str) -> FinalModel:
        """This record with variant `name` chosen: its path and test results become the record's."""
        variant = next((v for v in self.variants if v.name == name), None)
        if variant is None:
            known = ", ".join(v.name for v in self.variants) or "only the single refit"
            raise ValueError(f"final model: no variant {name!r} (there is {known})")
        return dataclasses.replace(self, model_path=variant.model_path, test=variant.test,
                                   test_accuracy=variant.test_accuracy, chosen=name)

    def model_files(self) -> list[str]:
        """The model files it refers to (artifact references, or paths from before the artifact store)."""
        return list(dict.fromkeys([self.model_path, *(v.model_path for v in self.variants)]))

    def with_paths(self, local: Callable[[str], Path]) -> FinalModel:
        """This record with each model reference replaced by `local(reference)`: a file to load."""
        return dataclasses.replace(self, model_path=str(local(self.model_path)),
                                   variants=[dataclasses.replace(v, model_path=str(local(v.model_path)))
                                             for v in self.variants])

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FinalModel:
        """Also reads records written before variants existed."""
        later = ("variants", "chosen", "ensemble_trials", "why")
        plain = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name not in later}
        return cls(**plain, variants=[ModelVariant.from_json(v) for v in data.get("variants", [])],
                   chosen=str(data.get("chosen", "single")),
                   ensemble_trials=[int(t) for t in data.get("ensemble_trials", [])],
                   why=str(data.get("why", "")))


@dataclass
class Driver:
    """The process driving a sweep, so a restarted server can tell whether to resume it."""

    host: str
    pid: int
    since: str
    executor: dict[str, Any] = dataclasses.field(default_factory=dict)   # where its workers run, to resume alike

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Driver:
        return cls(str(data["host"]), int(data["pid"]), str(data.get("since", "")), dict(data.get("executor") or {}))


@dataclass
class TrialRecord:
    """Everything kept for one trial, as the store hands it out."""

    sweep: str
    number: int
    state: TrialState
    value: float | None                 # mean CV error, once complete
    params: dict[str, Any]              # the swept values of this trial
    result: TrialResult | None = None
    live: LiveProgress | None = None
    error: str = ""                     # why it failed
    duration_s: float | None = None
    started: float | None = None        # unix time the trial started running
    retry_of: int | None = None         # the interrupted trial this one re-runs
    intermediate_values: dict[int, float] = field(default_factory=dict)   # pruning steps -> error so far


@dataclass
class BudgetClock:
    """A sweep's time budget as it runs (`core.search.deadline`): the unix time it counts from (moved on by a
    resume, so a pause is not spent) and, once the budget cut the sweep short, why."""

    origin: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BudgetClock:
        return cls(origin=float(data["origin"]), note=str(data.get("note", "")))


@dataclass
class SweepRecord:
    """A sweep as the store keeps it: its spec (as JSON), status, who drives it, its final model."""

    name: str
    spec: dict[str, Any]                # `SweepSpec.to_dict()`; `RunStore.spec` parses it
    status: SweepStatus
    created: str
    stop_requested: bool = False
    driver: Driver | None = None
    final: FinalModel | None = None
    failure: str = ""                   # why the sweep failed (status FAILED)
    step: StepProgress | None = None    # the driver's long step after the trials (refit, test)
    launched_by: str = ""               # who launched it last ("" when nobody is logged in)
    stopped_by: str = ""                # who asked it to stop last
    decisions_version: int = 0          # the dataset's label-decisions version it was created with (0: none)
    clock: BudgetClock | None = None    # its time budget's clock (None: no time limit, or not started yet)


def ranked(trials: list[TrialRecord]) -> list[TrialRecord]:
    """The complete trials with a CV error, lowest first (ties in trial order): `[0]` is the sweep's best."""
    return sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: t.value)
