"""A finished sweep's records written through the real run store without training anything: one complete
trial (two folds, their curves and confusions, out-of-fold scores) and a final model tested on generated
images, with known mistakes in both, for the Results page's tests (AppTest and Chromium)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["blue", "green", "red"]
TEST_PER_CLASS = 4
TEST_MISTAKE = (2, 1)          # (true, predicted) of the test split's one mistake: a red image called green
OOF_MISTAKES = ((0, 2), (1, 0))  # the out-of-fold scores' mistakes: a blue called red, a green called blue


def _scores(labels: np.ndarray, mistakes: dict[int, int]) -> np.ndarray:
    """0.8 on the predicted class (the true one but where `mistakes` maps a row to another), 0.1 elsewhere."""
    predicted = np.array([mistakes.get(i, y) for i, y in enumerate(labels)])
    return np.where(np.eye(len(CLASSES))[predicted] > 0, 0.8, 0.1)


def _first(labels: np.ndarray, true: int) -> int:
    return int(np.flatnonzero(labels == true)[0])


def recorded_sweep(name: str, dataset: Path, model_path: str = "no-model.keras", refit: bool = True):
    """A finished sweep `name` on the class folders of `dataset` (generated images, `conftest`), in the
    store the environment names. `refit` False: the fold ensemble is the final model, no refit."""
    from optuna.distributions import CategoricalDistribution

    from core.runs.evaluation import Evaluation
    from core.runs.records import FinalModel, FoldResult, ModelVariant, OutOfFold, TrialResult
    from core.runs.store import RunStore
    from core.spec.sweep import SweepSpec

    files = {c: sorted(str(p) for p in (dataset / c).glob("*.jpg")) for c in CLASSES}
    test_paths = [p for c in CLASSES for p in files[c][:TEST_PER_CLASS]]
    train_paths = [p for c in CLASSES for p in files[c][TEST_PER_CLASS:]]
    test_y = np.repeat(np.arange(len(CLASSES)), TEST_PER_CLASS)
    train_y = np.array([CLASSES.index(Path(p).parent.name) for p in train_paths])
    test = Evaluation(CLASSES, test_y, _scores(test_y, {_first(test_y, TEST_MISTAKE[0]): TEST_MISTAKE[1]}),
                      paths=test_paths)
    oof_scores = _scores(train_y, {_first(train_y, t): p for t, p in OOF_MISTAKES})
    folds = np.arange(len(train_y)) % 2
    oof = OutOfFold(paths=train_paths, labels=train_y, classes=CLASSES, folds=folds, scores=oof_scores)
    fold_results = []
    for k in range(2):
        held = Evaluation(CLASSES, train_y[folds == k], oof_scores[folds == k])
        curves = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
                  "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.4, 0.7, held.accuracy()]}
        fold_results.append(FoldResult(fold=k, val_error=1 - held.accuracy(), best_epoch=2, curves=curves,
                                       summary=held.summary()))
    result = TrialResult(folds=fold_results, cache="off", cut="", duration_s=12.3456, oof=oof)

    store = RunStore()
    store.create_sweep(SweepSpec.from_dict({"name": name, "data": {"dataset": str(dataset)}, "folds": 2,
                                            "search": {"space": {"learning_rate": [0.01, 0.001]}}}))
    study = store.study(name)
    for rate in (0.01, 0.001):                  # two trials, the first the final model's: one swept parameter
        study.enqueue_trial({"learning_rate": rate})
        trial = study.ask({"learning_rate": CategoricalDistribution([0.01, 0.001])})
        store.set_result(trial, result)
        study.tell(trial, result.value)
    common = dict(trial=0, cv_error=result.value, params={"learning_rate": 0.01},
                  model_path=model_path, test=test.to_json(), test_accuracy=test.accuracy(), created="now")
    if refit:
        fit = Evaluation(CLASSES, train_y, _scores(train_y, {}), paths=train_paths)    # the refit's own training fit
        final = FinalModel(epochs=3, train=fit.to_json(), **common)
    else:
        variants = [ModelVariant(v, model_path, test.to_json(), test.accuracy()) for v in ("ensemble", "ensemble_tta")]
        final = FinalModel(epochs=0, train=Evaluation(CLASSES, train_y, oof_scores, paths=train_paths).to_json(),
                           variants=variants, chosen="ensemble", **common)
    store.set_final(name, final)
    store.set_status(name, "done")
    return store
