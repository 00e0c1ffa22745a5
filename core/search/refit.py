"""The final model: the best configuration refit on the whole train part, tested, saved with its card."""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable

from core.runs.records import FinalModel, StepProgress, TrialRecord, TrialState
from core.runs.store import RunStore
from core.training.plan import SweepData

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
    epochs = refit_epochs(best)
    say(f"refitting trial {best.number} (CV error {best.value:.4f}) on the whole train part for {epochs} epochs")
    data = data or SweepData.of_sweep(store, name, say=say)
    started = time.monotonic()

    def report(fold: int, epoch: int, logs: dict[str, float]) -> None:
        rate = (epoch + 1) / max(time.monotonic() - started, 1e-6)
        store.set_step(name, StepProgress("refitting the best configuration (epochs)", epoch + 1, epochs, rate))
    try:
        clf, test, train = data.runner(params).refit(params, epochs, base_cut=data.base_cut(params), reporter=report)
    finally:
        store.set_step(name, None)
    model_path = store.artifact_dir(name) / "best.keras"
    save_model(clf.model, model_path, classes=data.dataset.classes, image_size=params.image_size,
               extra={"sweep": name, "trial": best.number, "params": dataclasses.asdict(params)})
    record = FinalModel(trial=best.number, cv_error=float(best.value), params=dataclasses.asdict(params),
                        epochs=epochs, model_path=str(model_path), test=test.to_json(), train=train.to_json(),
                        test_accuracy=test.accuracy(), created=dt.datetime.now(dt.timezone.utc).isoformat())
    store.set_final(name, record)
    say(f"test accuracy of the refit model: {test.accuracy():.4f} on {len(test.y_true)} images -> {model_path}")
    return record
