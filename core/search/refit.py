"""The final model: the best configuration refit on the whole train part, tested, saved with its card.

With the sweep's `ensemble` option (network trials), the best configuration's K fold models are
trained again and kept as two more variants: their average, and that average with horizontal-flip
test-time augmentation; each is tested, the single refit stays the chosen one.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.runs.records import FinalModel, ModelVariant, TrialRecord, TrialState
from core.runs.store import RunStore
from core.search.worker import sweep_step
from core.spec.sweep import TrialParams
from core.training.plan import SweepData
from core.training.schedules import planned_epochs

Say = Callable[[str], None]


def refit_epochs(trial: TrialRecord) -> int:
    """Epochs for the final refit: one past the mean best epoch of the trial's folds."""
    if trial.result is None or not trial.result.folds:
        return 1
    return max(1, int(round(trial.result.mean_best_epoch)) + 1)


def finalize(store: RunStore, name: str, say: Say | None = None, data: SweepData | None = None
             ) -> FinalModel | None:
    """Refit the best configuration on the whole train part, test it, save the model.

    Skipped when the stored final model already belongs to the current best trial. `data`: the
    sweep's loaded and split dataset, when the caller already has it.
    """
    from core.inference.model_card import save_model

    say = say or (lambda _: None)
    spec = store.spec(name)
    complete = [t for t in store.trials(name) if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        say("no completed trial to refit")
        return None
    best = min(complete, key=lambda t: t.value)
    current = store.final(name)
    if current and current.trial == best.number:
        return current
    params = spec.trial_params(best.params)
    network = params.kind == "network"
    epochs = refit_epochs(best) if network else 0
    what = f"for {epochs} epochs" if network else f"({params.kind} on the frozen {params.backbone} features)"
    say(f"refitting trial {best.number} (CV error {best.value:.4f}) on the whole train part {what}")
    data = data or SweepData.of_sweep(store, name, say=say)
    if network:
        with _steps(store, name, "refitting the best configuration (epochs)", epochs) as report:
            clf, test, train = data.runner(params).refit(params, epochs, base_cut=data.base_cut(params),
                                                         reporter=report)
        model = clf.model
    else:
        from core.training.features_kinds import refit_features
        model, test, train = refit_features(data.runner(params), params)
    card = {"sweep": name, "trial": best.number, "kind": params.kind, "params": dataclasses.asdict(params)}
    model_path = store.artifact_dir(name) / "best.keras"
    save_model(model, model_path, classes=data.dataset.classes, image_size=params.image_size,
               extra=card | {"variant": "single"})
    record = FinalModel(trial=best.number, cv_error=float(best.value), params=dataclasses.asdict(params),
                        epochs=epochs, model_path=str(model_path), test=test.to_json(), train=train.to_json(),
                        test_accuracy=test.accuracy(), created=dt.datetime.now(dt.timezone.utc).isoformat())
    say(f"test accuracy of the refit model: {test.accuracy():.4f} on {len(test.y_true)} images -> {model_path}")
    if spec.ensemble and network:
        single = ModelVariant("single", record.model_path, record.test, record.test_accuracy)
        record.variants = [single, *fold_variants(store, name, data, params, card, say)]
    store.set_final(name, record)
    return record


def fold_variants(store: RunStore, name: str, data: SweepData, params: TrialParams, card: dict[str, Any],
                  say: Say) -> list[ModelVariant]:
    """Train the configuration's K fold models again; save and test their average, without and with TTA."""
    from core.inference.model_card import save_model
    from core.results.metrics import Evaluation
    from core.training.ensembles import flip_tta, fold_ensemble
    from core.training.trial import predict_scores

    models, cuts = [], []
    runner = data.runner(params)
    total = len(data.folds) * planned_epochs(params)
    with _steps(store, name, "training the fold models for the ensemble (epochs, at most)", total) as report:
        runner.run(params, report, base_cut=data.base_cut(params),
                   on_fold_model=lambda fold, model, cut: (models.append(model), cuts.append(cut)))
    ensemble = fold_ensemble(models, cuts[0])
    rows, trial_data = data.test_rows, runner.data
    paths = [trial_data.paths[r] for r in rows] if trial_data.paths else None
    variants = []
    for variant, model in (("ensemble", ensemble), ("ensemble_tta", flip_tta(ensemble))):
        path = store.artifact_dir(name) / f"best-{variant}.keras"
        save_model(model, path, classes=data.dataset.classes, image_size=params.image_size,
                   extra=card | {"variant": variant})
        test = Evaluation(data.dataset.classes, trial_data.labels[rows], predict_scores(model, trial_data.images, rows),
                          paths=paths)
        variants.append(ModelVariant(variant, str(path), test.to_json(), test.accuracy()))
        say(f"test accuracy of the {variants[-1].label}: {test.accuracy():.4f} -> {path}")
    return variants


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
