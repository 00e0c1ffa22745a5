"""A sweep spec becomes Optuna trials: data plan, sampler, pruner, objective, worker, final refit.

Plans and records (the Oracle's role); one trial's training is `training.TrialRunner`'s job,
where the trials run is `executors`'. Any number of workers, on any machine that reaches the
store, can work on one sweep: Optuna's storage hands each its next trial.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from core.data.datasets import Dataset, load_dataset, resolve_dataset_path
from core.data.image_cache import decoded_images
from core.data.scan import duplicate_groups_for
from core.settings import Settings, load_settings
from core.spec.sweep import SweepSpec, TrialParams
from core.data.splits import kfold_indices, split_as
from core.runs.store import SURPLUS, RunStore

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class StopRequested(Exception):
    """Someone pressed Stop: the running trial is queued again and the worker exits."""


def resolve_dataset(dataset: str, settings: Settings) -> Path:
    """An absolute path as given (the CLI user's own machine), else a name under the data roots."""
    path = Path(dataset).expanduser()
    if path.is_absolute():
        return path
    return resolve_dataset_path(dataset, settings.data_roots)


def limit_per_class(dataset: Dataset, max_per_class: int, seed: int) -> Dataset:
    """A seeded random subset with at most `max_per_class` images of each class."""
    if max_per_class <= 0:
        return dataset
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(dataset.labels == c))[:max_per_class]
            for c in range(len(dataset.classes))]
    return dataset.subset(np.sort(np.concatenate(keep)))


class SweepData:
    """The dataset of a sweep, split into train (with K folds) and test, decoded per image size."""

    def __init__(self, spec: SweepSpec, settings: Settings | None = None, say: Say | None = None):
        self.spec, self.settings = spec, settings or load_settings()
        say = say or (lambda _: None)
        data = spec.data
        root = resolve_dataset(data.dataset, self.settings)
        say(f"loading dataset {root}")
        dataset = limit_per_class(load_dataset(root), data.max_per_class, data.seed)
        for path, reason in dataset.skipped:
            say(f"skipped {path}: {reason}")
        self.dataset = dataset
        groups = duplicate_groups_for(dataset)
        split = split_as(data.split, dataset.labels, test_fraction=data.test_fraction, seed=data.seed,
                         train_count=data.train_count, test_count=data.test_count, groups=groups)
        self.train_rows, self.test_rows = split.train, split.test
        self.folds = [(self.train_rows[a], self.train_rows[b]) for a, b in
                      kfold_indices(dataset.labels[self.train_rows], spec.folds, data.seed,
                                    groups=groups[self.train_rows])]
        self.fingerprint = dataset.fingerprint()

    @lru_cache(maxsize=2)
    def trial_data(self, image_size: int):
        from core.training.trial import TrialData
        images = decoded_images(self.dataset, image_size, self.settings.cache_dir)
        return TrialData(images=images, labels=self.dataset.labels, classes=self.dataset.classes,
                         train_rows=self.train_rows, test_rows=self.test_rows, folds=self.folds,
                         fingerprint=self.fingerprint, paths=self.dataset.paths)


def weights_identity(params: TrialParams, seed: int) -> str:
    """What decides the backbone's weights, for the activation-cache key."""
    if params.weights == "none":
        return f"random:{seed}"
    from core.models.weights import resolve_weights
    path = resolve_weights(params.backbone, image_size=params.image_size)
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.data.seed
    if spec.search.method == "grid":
        return optuna.samplers.GridSampler(spec.search.space or {"_": [0]}, seed=seed)
    if spec.search.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.search.pruning:
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, spec: SweepSpec) -> dict:
    """One value per swept parameter: from its list, or from its {low, high, log} range."""
    values = {}
    for name, space in spec.search.space.items():
        if isinstance(space, list):
            values[name] = trial.suggest_categorical(name, space)
        elif isinstance(space["low"], int) and isinstance(space["high"], int):
            values[name] = trial.suggest_int(name, space["low"], space["high"], log=space.get("log", False))
        else:
            values[name] = trial.suggest_float(name, space["low"], space["high"], log=space.get("log", False))
    if spec.search.method == "grid" and not spec.search.space:
        trial.suggest_categorical("_", [0])
    return values


def deepest_trainable(spec: SweepSpec) -> int:
    """The most trainable layers any trial of the sweep can ask for."""
    space = spec.search.space.get("trainable_layers")
    if space is None:
        return spec.params.trainable_layers
    return max(space) if isinstance(space, list) else int(space["high"])


_CUTS: dict[tuple, str] = {}


def sweep_cut(spec: SweepSpec, params: TrialParams, classes: int) -> str:
    """The cut of the sweep's deepest trial for this backbone: the backbone runs once, up to it,
    and every other trainable-layers value derives its cache from that one."""
    from core.models.classifier import build_classifier
    depth = deepest_trainable(spec)
    key = (params.backbone, params.weights, params.image_size, depth, classes, spec.data.seed)
    if key not in _CUTS:
        deepest = dataclasses.replace(params, trainable_layers=depth)
        _CUTS[key] = build_classifier(deepest, classes, seed=spec.data.seed).cut
    return _CUTS[key]


@dataclass
class Watch:
    """What a worker tells whoever watches it in the same process (the CLI's progress bars)."""

    say: Say = log.info                                   # one-off messages
    stage: Say = lambda _: None                           # the current step, replaced as work goes on
    trial_done: Callable[[], None] = lambda: None


class Objective:
    """Optuna objective: one configuration's K-fold CV error, with live curves written per epoch."""

    def __init__(self, store: RunStore, name: str, data: SweepData, watch: Watch | None = None):
        self.store, self.name, self.data, self.spec = store, name, data, data.spec
        self.watch = watch or Watch()
        self.cache = None
        if self.spec.use_cache:
            from core.training.activations import ActivationCache
            self.cache = ActivationCache(data.settings.cache_dir)

    def __call__(self, trial: optuna.Trial) -> float:
        from core.training.trial import TrialRunner
        if _is_surplus(self.store, self.name, self.spec, trial.number):
            trial.set_user_attr(SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned("surplus: every planned trial is taken")
        params = self.spec.trial_params(suggest(trial, self.spec))
        seed = self.spec.data.seed
        runner = TrialRunner(self.data.trial_data(params.image_size), self.cache, seed=seed,
                             weights_id=lambda p: weights_identity(p, seed),
                             cache_progress=lambda done, total: self.watch.stage(
                                 f"trial {trial.number}: backbone activations {done}/{total}"))
        try:
            result = runner.run(params, self._reporter(trial, params),
                                base_cut=sweep_cut(self.spec, params, len(self.data.dataset.classes)))
        except (optuna.TrialPruned, StopRequested):
            raise
        except Exception as error:  # a broken configuration fails its trial, not the sweep
            log.exception("trial %s failed", trial.number)
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            return float("nan")
        trial.set_user_attr("result", result.to_dict())
        return result.value

    def _reporter(self, trial: optuna.Trial, params: TrialParams):
        curves: dict[str, dict[str, list[float]]] = {}

        def report(fold: int, epoch: int, logs: dict) -> None:
            fold_curves = curves.setdefault(f"fold {fold + 1}", {})
            for key, value in logs.items():
                fold_curves.setdefault(key, []).append(value)
            trial.set_user_attr("live", {"fold": fold, "epoch": epoch, "curves": curves})
            accuracy = logs.get("val_accuracy", logs.get("accuracy", float("nan")))
            self.watch.stage(f"trial {trial.number}: fold {fold + 1}/{len(self.data.folds)}, epoch {epoch + 1}/"
                             f"{params.epochs}, validation accuracy {accuracy:.3f}")
            if self.spec.search.pruning and "val_accuracy" in logs:
                trial.report(1.0 - logs["val_accuracy"], step=fold * params.epochs + epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at fold {fold + 1}, epoch {epoch + 1}")
            if self.store.stop_requested(self.name):
                study = trial.study
                RetryHeartbeatStaleTrialCallback()(study, study._storage.get_trial(trial._trial_id))
                raise StopRequested(f"sweep {self.name!r}: stop requested")
        return report


def remaining_trials(store: RunStore, name: str, spec: SweepSpec) -> int:
    """Trials nobody has started yet: planned minus finished or running (a retry queued for an
    interrupted trial is one of those not yet taken)."""
    trials = store.trials(name)
    taken = sum(t.state == TrialState.RUNNING or (t.state.is_finished() and not _was_retried(t, trials))
                for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return max(spec.grid_size() - taken, waiting)


def _is_surplus(store: RunStore, name: str, spec: SweepSpec, number: int) -> bool:
    """Do earlier trials already hold every planned configuration?

    Two workers can both see one trial left and both start one; the higher number yields (a grid
    would repeat a point). Held: running, queued, or finished and not queued again. A retry of an
    interrupted trial is never surplus.
    """
    trials = store.trials(name)
    if any(t.number == number and "failed_trial" in t.system_attrs for t in trials):
        return False
    held = sum(t.state in (TrialState.RUNNING, TrialState.WAITING)
               or (t.state.is_finished() and not _was_retried(t, trials))
               for t in trials if t.number < number)
    return held >= spec.grid_size()


def _was_retried(trial, trials) -> bool:
    return trial.state == TrialState.FAIL and any(
        t.system_attrs.get("failed_trial") == trial.number for t in trials if t is not trial)


def run_worker(store: RunStore, name: str, watch: Watch | None = None, data: SweepData | None = None) -> int:
    """Work on the sweep until nothing is left (or Stop); returns the number of trials this worker ran.

    `data`: the sweep's loaded and split dataset, when the caller already has it.
    """
    watch = watch or Watch()
    spec = store.spec(name)
    if remaining_trials(store, name, spec) == 0:
        return 0
    data = data or SweepData(spec, say=watch.say)
    study = store.study(name, sampler=make_sampler(spec), pruner=make_pruner(spec))
    objective = Objective(store, name, data, watch)
    ran = 0

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1
        watch.trial_done()
        if remaining_trials(store, name, spec) == 0:
            study.stop()

    try:
        study.optimize(objective, callbacks=[after_trial], catch=())
    except StopRequested as stop:
        watch.say(str(stop))
    return ran


def refit_epochs(store: RunStore, name: str, number: int) -> int:
    """Epochs for the final refit: one past the mean best epoch of the trial's folds."""
    folds = store.trial_record(name, number).get("result", {}).get("folds", [])
    return max(1, int(round(np.mean([f["best_epoch"] for f in folds]))) + 1) if folds else 1


def finalize(store: RunStore, name: str, say: Say | None = None, data: SweepData | None = None) -> dict | None:
    """Refit the best configuration on the whole train part, test it, save the model.

    Skipped when the stored final model already belongs to the current best trial. `data`: the
    sweep's loaded and split dataset, when the caller already has it.
    """
    import datetime as dt

    from core.training.activations import ActivationCache
    from core.inference.model_card import save_model
    from core.training.trial import TrialRunner

    say = say or (lambda _: None)
    spec = store.spec(name)
    complete = [t for t in store.trials(name) if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        say("no completed trial to refit")
        return None
    best = min(complete, key=lambda t: t.value)
    current = store.final(name)
    if current and current.get("trial") == best.number:
        return current
    params = spec.trial_params({k: v for k, v in best.params.items() if k != "_"})
    epochs = refit_epochs(store, name, best.number)
    say(f"refitting trial {best.number} (CV error {best.value:.4f}) on the whole train part for {epochs} epochs")
    data = data or SweepData(spec, say=say)
    seed = spec.data.seed
    runner = TrialRunner(data.trial_data(params.image_size),
                         ActivationCache(data.settings.cache_dir) if spec.use_cache else None, seed=seed,
                         weights_id=lambda p: weights_identity(p, seed))
    clf, test, train = runner.refit(params, epochs, base_cut=sweep_cut(spec, params, len(data.dataset.classes)))
    model_path = store.artifact_dir(name) / "best.keras"
    save_model(clf.model, model_path, classes=data.dataset.classes, image_size=params.image_size,
               extra={"sweep": name, "trial": best.number, "params": dataclasses.asdict(params)})
    record = {"trial": best.number, "cv_error": best.value, "params": dataclasses.asdict(params), "epochs": epochs,
              "model_path": str(model_path), "test": test.to_json(), "train": train.to_json(),
              "test_accuracy": test.accuracy(), "created": dt.datetime.now(dt.timezone.utc).isoformat()}
    store.set_final(name, record)
    say(f"test accuracy of the refit model: {test.accuracy():.4f} on {len(test.y_true)} images -> {model_path}")
    return json.loads(json.dumps(record))
