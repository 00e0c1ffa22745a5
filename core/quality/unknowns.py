"""Which images look like none of a sweep's classes: the open-set detector a final model carries.

Fitted for free from what the sweep kept: its best trial's out-of-fold scores (every training image scored by
the fold model that never saw it) and the frozen backbone's pooled features of the same images (the
activation cache). The scores are probabilities, so energy is left out and the logit detectors take no part
in the held-out comparison (`core.quality.open_set`); a feature detector is kept. New images are scored on the
same frozen features (`image_features`), whatever the final model fine-tuned: the card names that frozen
backbone (`features`), which Predict rebuilds and every export carries as a second, feature model.

At the end of a sweep `core.search.final_unknowns` writes the detector and the temperature fitted here into
each final model file: the card (`open_set`, `temperature`) and the detector's arrays as one more zip entry
(OPEN_SET_ENTRY, an .npz).
"""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from core.quality.open_set import ACCEPT, FoldOutputs, OpenSetDetector, fit_open_set
from core.spec.sweep import TrialParams

if TYPE_CHECKING:
    import keras

    from core.runs.store import RunStore
    from core.training.plan import SweepData

OPEN_SET_ENTRY = "transferlab_open_set.npz"
MAX_ARRAYS_BYTES = 64 << 20     # a compact k-NN bank is ~5 MB; a bigger entry in an uploaded file is not read


@dataclass
class CarriedDetector:
    """A final model's detector and the frozen backbone whose pooled features it scores."""

    detector: OpenSetDetector
    features: TrialParams

    def scores(self, images: np.ndarray) -> np.ndarray:
        """How unknown each uint8 image (N, S, S, 3) looks; above `detector.threshold`: none of the classes."""
        return self.detector.scores(features=image_features(self.features, images))

    def card(self) -> dict[str, Any]:
        """The card's `open_set`: the detector's numbers and the backbone its features come from."""
        return {**self.detector.card(), "features": dataclasses.asdict(self.features), "arrays": OPEN_SET_ENTRY}

    @classmethod
    def from_card(cls, card: dict[str, Any], arrays: dict[str, np.ndarray]) -> CarriedDetector:
        try:
            features = TrialParams(**card["features"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"the open-set detector names no usable feature backbone ({error})") from None
        return cls(detector=OpenSetDetector.from_card(card, arrays), features=features)


def frozen(params: TrialParams) -> TrialParams:
    """The trial's backbone, frozen, un-augmented: what the pooled features come from."""
    return dataclasses.replace(params, trainable_layers=0, augmentation="none")


def sweep_detector(store: RunStore, sweep: str, accept: float = ACCEPT, trials: list[int] | None = None,
                   data: SweepData | None = None) -> tuple[OpenSetDetector, TrialParams]:
    """The detector of the average of `trials` (a final ensemble's members, the first giving the features;
    default: the best trial with out-of-fold scores), and the params its features need. `data`: the sweep's
    loaded dataset, when the caller has it."""
    from core.quality.suspects import scored_trials
    from core.training.plan import SweepData
    if trials is None:
        record, oof = scored_trials(store, sweep)[0]
    else:
        record = next((t for t in store.trials(sweep) if t.number == trials[0]), None)
        oof = store.oof(sweep, *trials) if record else None
        if oof is None:
            raise ValueError(f"trial {', '.join(map(str, trials))} kept no out-of-fold scores to fit it on")
    params = frozen(store.spec(sweep).trial_params(record.params))
    data = data or SweepData.of_sweep(store, sweep)
    features = data.runner(params).pooled_features(params)
    row_of = {path: row for row, path in enumerate(data.dataset.paths)}
    rows = [row_of[path] for path in oof.paths]
    outputs = FoldOutputs(features=features[rows], logits=_logits_of(oof.scores), labels=oof.labels,
                          folds=oof.folds, true_logits=False)
    return fit_open_set(outputs, accept=accept), params


def _logits_of(scores: np.ndarray) -> np.ndarray:
    from core.results.calibration import logits_of
    return logits_of(scores)


@lru_cache(maxsize=4)
def _feature_model(params_json: str, classes: int, seed: int) -> keras.Model:
    from core.models.classifier import build_classifier
    return build_classifier(frozen(TrialParams(**json.loads(params_json))), classes, seed=seed).bottom_model()


def feature_model(params: TrialParams, classes: int = 2, seed: int = 0) -> keras.Model:
    """The frozen backbone of `params` up to its pooled features, built once per process (the head,
    `classes` wide, is not part of it; `seed` fixes random weights)."""
    return _feature_model(json.dumps(dataclasses.asdict(params), sort_keys=True), classes, seed)


def image_features(params: TrialParams, images: np.ndarray, classes: int = 2, seed: int = 0) -> np.ndarray:
    """Pooled features (N, D) of uint8 images (N, S, S, 3) from the frozen backbone of `params`, as cached
    for a sweep."""
    from core.training.predictions import predict_scores
    return predict_scores(feature_model(params, classes, seed), np.asarray(images), np.arange(len(images)))


def refusal_line(detector: OpenSetDetector, score: float) -> str:
    """What Predict and the CLI say instead of a confident class."""
    return f"looks like none of the classes (score {score:.3f}, threshold {detector.threshold:.3f})"


def arrays_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The detector's arrays as an uncompressed .npz (what OPEN_SET_ENTRY and an export's side file hold)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read_arrays(data: bytes, name: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz read from a file anyone may have made: no pickles, its entries checked as any
    archive is before they inflate (`name`: what messages call it)."""
    from core.data.archives import ArchiveError, check_zip
    try:
        check_zip(io.BytesIO(data), name=name, max_bytes=MAX_ARRAYS_BYTES)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: np.asarray(npz[key]) for key in npz.files}
    except (ArchiveError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{name} holds no readable detector arrays ({error})") from None


def carried(card: dict[str, Any], arrays: Callable[[], bytes]) -> tuple[CarriedDetector | None, str]:
    """The detector a model card names (its arrays read by `arrays`), or None and why there is none."""
    open_set = card.get("open_set")
    if not isinstance(open_set, dict):
        return None, "this model was saved without one (a final model carries one since sweeps fit it)"
    if "reason" in open_set:
        return None, str(open_set["reason"])
    try:
        return CarriedDetector.from_card(open_set, read_arrays(arrays(), OPEN_SET_ENTRY)), ""
    except (ValueError, KeyError) as error:
        return None, f"its detector cannot be read ({error})"


def sweep_temperature(store: RunStore, sweep: str, trials: list[int]) -> float | None:
    """The temperature fitted on the out-of-fold scores of the average of `trials` (one trial, or a final
    ensemble's members; None without them), as the Results page shows."""
    from core.results.calibration import fit_temperature
    oof = store.oof(sweep, *trials)
    return None if oof is None else fit_temperature(_logits_of(oof.scores), oof.labels)
