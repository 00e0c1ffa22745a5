"""A finished sweep's open-set detector: fitted on its best trial's out-of-fold scores and the frozen
backbone's pooled features, it accepts the sweep's own kind of image and refuses a far-away one."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_class_folders

from core.quality.open_set import OpenSetDetector
from core.runs.store import RunStore
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData

NAME = "unknowns"


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunStore, SweepSpec]:
    root = write_class_folders(tmp_path_factory.mktemp("data") / "colours", per_class=16)
    spec = SweepSpec.from_dict({"name": NAME, "folds": 3, "data": {"dataset": str(root), "test_fraction": 0.2},
                                "params": {"image_size": 32, "epochs": 3, "batch_size": 16}})
    store = RunStore(f"sqlite:///{tmp_path_factory.mktemp('runs') / 'runs.db'}")
    store.create_sweep(spec)
    assert run_worker(store, NAME) == 1
    return store, spec


def far_images() -> np.ndarray:
    """Noise and a checkerboard, 32 px: nothing like the colour classes."""
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, 256, (32, 32, 3)).astype(np.uint8),               # noise
                     np.kron(np.indices((4, 4)).sum(0) % 2, np.ones((8, 8)))[..., None].repeat(3, 2)
                     .astype(np.uint8) * 255])                                          # a checkerboard


@pytest.mark.slow     # a real sweep: ~12 s
def test_a_sweeps_detector_accepts_its_images_and_refuses_a_far_away_one(swept) -> None:
    from core.quality.unknowns import image_features, refusal_line, sweep_detector
    store, spec = swept
    detector, params = sweep_detector(store, NAME)
    assert detector.method in ("mahalanobis", "knn") and detector.accept == 0.95
    data = SweepData(spec)
    test = np.asarray(data.trial_data(32).images[data.test_rows])
    far = far_images()
    assert detector.refuses(features=image_features(params, far)).all()
    assert detector.refuses(features=image_features(params, test)).mean() <= 0.25
    again = OpenSetDetector.from_json(json.loads(json.dumps(detector.to_json())))
    assert again.refuses(features=image_features(params, far)).all()
    score = float(detector.scores(features=image_features(params, far[:1]))[0])
    assert refusal_line(detector, score) == (f"looks like none of the classes (score {score:.3f}, "
                                             f"threshold {detector.threshold:.3f})")


@pytest.mark.slow     # the sweep above, then its refit and the detector written into the final model: ~10 s
def test_the_final_model_carries_the_detector_and_temperature_the_sweep_fitted(swept) -> None:
    from core.inference.model_card import load_model
    from core.quality.unknowns import image_features, sweep_detector
    from core.search.refit import finalize
    store, spec = swept
    finalize(store, NAME)
    loaded = load_model(store.final(NAME, local=True).model_path)
    assert loaded.unknowns is not None and loaded.temperature is not None, loaded.no_unknowns
    fresh, params = sweep_detector(store, NAME)
    carried = loaded.unknowns.detector
    assert (carried.method, carried.threshold) == (fresh.method, pytest.approx(fresh.threshold))
    data = SweepData(spec)
    images = np.concatenate([far_images(), np.asarray(data.trial_data(32).images[data.test_rows])])
    refused = loaded.unknowns.scores(images) > carried.threshold
    assert np.array_equal(refused, fresh.refuses(features=image_features(params, images)))
    assert refused[:2].all() and refused[2:].mean() <= 0.25
