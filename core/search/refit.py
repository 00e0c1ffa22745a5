"""The final model: the best configuration refit on the whole train part, tested, saved with its card.

With the sweep's `ensemble` option (network trials), the best trial's K fold models, kept as the
trial trained them (with those of the next best trials whose out-of-fold scores say they help:
`core.search.ensemble_members`), become two more variants: their average, and that average with
horizontal-flip test-time augmentation; each is tested, and the single refit stays the chosen one.
Without `refit` the plain ensemble is the chosen one, and nothing trains after the sweep.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from core.progress import Say
from core.search.final_unknowns import carry_unknowns
from core.runs.records import FinalModel, ModelVariant, TrialRecord
from core.runs.store import RunStore
from core.search.deadline import refit_deadline, refit_noted, refit_skipped
from core.search.ensemble_members import ensemble_members
from core.search.final_trial import final_trial
from core.search.worker import sweep_step
from core.spec.sweep import TrialParams
from core.training.kinds import keeps_fold_models, refit_description, refit_trial, run_trial
from core.training.plan import SweepData
from core.training.schedules import planned_epochs


def refit_epochs(trial: TrialRecord) -> int:
    """Epochs for the final refit: one past the mean best epoch of the trial's folds (0 when they kept their
    convex start, best epoch -1: `core.training.linear_start`)."""
    if trial.result is None or not trial.result.folds:
        return 1
    return max(0, int(round(trial.result.mean_best_epoch)) + 1)


def finalize(store: RunStore, name: str, say: Say | None = None, data: SweepData | None = None
             ) -> FinalModel | None:
    """The best configuration's final model, tested and saved: the refit, its fold ensemble, or both. The
    best is the lowest CV error, but for a lead within the noise of a network's fold ensemble (`final_trial`).

    Skipped when the stored final model already belongs to that trial. `data`: the
    sweep's loaded and split dataset, when the caller already has it.
    """
    say = say or (lambda _: None)
    spec = store.spec(name)
    chosen = final_trial(store, name)
    if chosen is None:
        say("no completed trial to refit")
        return None
    best, why = chosen
    current = store.final(name)
    if current and current.trial == best.number:
        return current
    if why:
        say(f"the final model comes from trial {best.number}: {why}")
    params = spec.trial_params(best.params)
    data = data or SweepData.of_sweep(store, name, say=say)
    card = {"sweep": name, "trial": best.number, "kind": params.kind, "params": dataclasses.asdict(params)}
    keeps_folds = spec.ensemble and keeps_fold_models(params)
    members = ensemble_members(store, name, best) if keeps_folds else [best]
    joined = [t.number for t in members] if len(members) > 1 else []
    if joined:
        card |= {"ensemble_trials": joined}
        say("the ensemble averages the fold models of trials " + ", ".join(map(str, joined))
            + " (together their out-of-fold predictions beat the best trial's alone)")
    ensemble = fold_variants(store, name, data, members, params, card, say) if keeps_folds else []
    if ensemble and (not spec.refit or refit_skipped(store, name)):      # no refit asked, or no time for it
        record = _ensemble_record(store, name, members, params, ensemble)
    else:
        record = _refit(store, name, data, best, params, card, say)
        if ensemble:
            record.variants = [ModelVariant("single", record.model_path, record.test, record.test_accuracy),
                               *ensemble]
    if ensemble:
        record.ensemble_trials = joined
    record.why = why
    store.set_final(name, record)
    store.drop_fold_models(name)
    return carry_unknowns(store, name, record, data, say)   # its open-set detector and temperature, in every file


def _refit(store: RunStore, name: str, data: SweepData, best: TrialRecord, params: TrialParams,
           card: dict[str, Any], say: Say) -> FinalModel:
    """Refit the configuration on the whole train part, test it, save the model."""
    from core.inference.model_card import save_model

    epochs = refit_epochs(best) if params.trains_network else 0
    say(f"refitting trial {best.number} (CV error {best.value:.4f}) on the whole train part "
        f"{refit_description(params, epochs)}")
    runner = data.runner(params)
    runner.deadline = refit_deadline(store, name)           # a time budget's end: its stages stop by it
    with _steps(store, name, "refitting the best configuration (epochs)", epochs) as report:
        model, test, train = refit_trial(runner, params, epochs, data.base_cut(params), report)
    refit_noted(store, name, runner.deadline)
    with store.artifacts.scratch() as folder:
        save_model(model, folder / "best.keras", classes=data.dataset.classes, image_size=params.image_size,
                   extra=card | {"variant": "single"})
        model_path = store.keep_final_file(name, folder / "best.keras")
    say(f"test accuracy of the refit model: {test.accuracy():.4f} on {len(test.y_true)} images -> "
        f"{store.model_file(model_path)}")
    return FinalModel(trial=best.number, cv_error=float(best.value), params=dataclasses.asdict(params),
                      epochs=epochs, model_path=model_path, test=test.to_json(), train=train.to_json(),
                      test_accuracy=test.accuracy(), created=_now())


def _ensemble_record(store: RunStore, name: str, members: list[TrialRecord], params: TrialParams,
                     variants: list[ModelVariant]) -> FinalModel:
    """The fold ensemble as the final model (no refit): its train evaluation is its trials' out-of-fold
    scores averaged, each training image scored by the fold models that did not see it."""
    from core.runs.evaluation import Evaluation

    best = members[0]
    oof = store.oof(name, *(t.number for t in members))
    train = Evaluation(oof.classes, oof.labels, oof.scores, paths=oof.paths).to_json() if oof else {}
    first = variants[0]
    return FinalModel(trial=best.number, cv_error=float(best.value), params=dataclasses.asdict(params),
                      epochs=0, model_path=first.model_path, test=first.test, train=train,
                      test_accuracy=first.test_accuracy, created=_now(), variants=variants, chosen=first.name)


def fold_variants(store: RunStore, name: str, data: SweepData, members: list[TrialRecord], params: TrialParams,
                  card: dict[str, Any], say: Say) -> list[ModelVariant]:
    """The fold models of the best trial (trained again when it did not keep them) and of its ensemble
    partners (`ensemble_members`), averaged; saved and tested without and with flip TTA."""
    from core.inference.model_card import save_model
    from core.runs.evaluation import Evaluation
    from core.training.ensembles import flip_tta, fold_ensemble, load_fold_models, lowest_cut, save_fold_model
    from core.training.predictions import predict_scores

    best = members[0]
    runner = data.runner(params)
    folder = store.fold_models_dir(name, best.number)
    kept = load_fold_models(folder, len(data.folds))
    if kept is None:
        say(f"trial {best.number} kept no fold models: training them again for the ensemble")
        total = len(data.folds) * planned_epochs(params)
        label = "training the fold models for the ensemble (epochs, at most)"
        with _steps(store, name, label, total) as report, store.artifacts.scratch() as folder:
            run_trial(runner, params, data.base_cut(params), report, on_fold=partial(save_fold_model, folder))
            kept = load_fold_models(folder, len(data.folds))
    models, cut = kept
    for partner in members[1:]:
        more, other = load_fold_models(store.fold_models_dir(name, partner.number), len(data.folds))
        models, cut = [*models, *more], lowest_cut(models[0], cut, other)
    ensemble = fold_ensemble(models, cut)
    rows, trial_data = data.test_rows, runner.data
    paths = [trial_data.paths[r] for r in rows] if trial_data.paths else None
    variants = []
    for variant, model in (("ensemble", ensemble), ("ensemble_tta", flip_tta(ensemble))):
        with store.artifacts.scratch() as folder:
            save_model(model, folder / f"best-{variant}.keras", classes=data.dataset.classes,
                       image_size=params.image_size, extra=card | {"variant": variant})
            path = store.keep_final_file(name, folder / f"best-{variant}.keras")
        scores = predict_scores(model, trial_data.images, rows)
        test = Evaluation(data.dataset.classes, trial_data.labels[rows], scores, paths=paths)
        variants.append(ModelVariant(variant, path, test.to_json(), test.accuracy()))
        say(f"test accuracy of the {variants[-1].label}: {test.accuracy():.4f} -> {store.model_file(path)}")
    return variants


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


@contextmanager
def _steps(store: RunStore, name: str, label: str, total: int) -> Iterator[Callable[[int, int, dict], None]]:
    """The driver's step in the store while a long fit runs (every epoch), cleared at the end; yields an
    epoch reporter."""
    done = 0
    with sweep_step(store, name, label, every_s=0) as progress:
        def report(fold: int, epoch: int, logs: dict[str, float]) -> None:
            nonlocal done
            done += 1
            progress(min(done, total), total)
        yield report
