"""A sweep's data and cache plan: which images, how they split, and where the backbone is cut.

Every trial of a sweep shares one split, one set of K folds and one backbone pass: the pass runs
up to the cut of the sweep's deepest trial, and every shallower trial derives its cache from it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from core.data.datasets import Dataset, dataset_path_anywhere, load_dataset
from core.data.decisions import DecisionLog
from core.data.image_cache import decoded_images
from core.data.scan import duplicate_groups_for
from core.data.splits import kfold_indices, split_decided
from core.progress import Progress, Say
from core.settings import Settings, load_settings
from core.spec.sweep import SweepSpec, TrialParams

SIZES_KEPT = 2          # decoded image sizes a sweep keeps open (a sweep rarely sweeps more)


def limit_per_class(dataset: Dataset, max_per_class: int, seed: int) -> Dataset:
    """A seeded random subset with at most `max_per_class` images of each class."""
    if max_per_class <= 0:
        return dataset
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(dataset.labels == c))[:max_per_class]
            for c in range(len(dataset.classes))]
    return dataset.subset(np.sort(np.concatenate(keep)))


def limit_train(dataset: Dataset, groups: np.ndarray, train: np.ndarray, test: np.ndarray, per_class: int,
                seed: int) -> tuple[Dataset, np.ndarray, np.ndarray, np.ndarray]:
    """The dataset cut to a seeded `per_class` of each class's train rows and every test row (so a small-data
    run tests on the same images as the full one and decodes no other): (dataset, groups, train, test)."""
    rng = np.random.default_rng(seed)
    labels = dataset.labels[train]
    kept = np.concatenate([rng.permutation(train[labels == c])[:per_class] for c in range(len(dataset.classes))])
    rows = np.sort(np.concatenate([kept, test]))
    return (dataset.subset(rows), groups[rows], np.searchsorted(rows, np.sort(kept)),
            np.searchsorted(rows, np.sort(test)))


def weights_identity(params: TrialParams, seed: int) -> str:
    """What decides the backbone's weights, for the activation-cache key."""
    if params.weights == "none":
        return f"random:{seed}"
    from core.models.weights import resolve_weights
    path = resolve_weights(params.backbone, image_size=params.image_size)
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def content_features(dataset: str | Path, params: TrialParams | None = None, settings: Settings | None = None,
                     say: Say | None = None, progress: Progress | None = None) -> tuple[Dataset, np.ndarray]:
    """The dataset (its decisions applied) and every image's pooled features from a frozen backbone (default:
    EfficientNet-Lite0 with ImageNet weights, resolved offline), through the activation cache: what
    `core.data.near_duplicates.content_groups` groups."""
    frozen = dataclasses.replace(params or TrialParams(), trainable_layers=0, augmentation="none")
    spec = SweepSpec.from_dict({"name": "content-features", "data": {"dataset": str(dataset)}, "folds": 2,
                                "params": dataclasses.asdict(frozen)})
    data = SweepData(spec, settings, say)
    runner = data.runner(frozen, cache_progress=progress, decode_progress=progress)
    return data.dataset, runner.pooled_features(frozen)


class SweepData:
    """The dataset of a sweep, split into train (with K folds) and test, decoded per image size.

    The dataset's label decisions apply (`core.data.decisions`): the latest, or `decisions_version`, the
    one the sweep recorded at creation, so a resumed sweep trains on the data its finished trials saw.
    Copies (the scan's hashes) and near-duplicates by content (saved with the decisions) stay on one side
    of the split and of every fold.
    """

    def __init__(self, spec: SweepSpec, settings: Settings | None = None, say: Say | None = None,
                 decisions_version: int | None = None):
        self.spec, self.settings = spec, settings or load_settings()
        say = say or (lambda _: None)
        data = spec.data
        root = dataset_path_anywhere(data.dataset, self.settings.data_roots)
        say(f"loading dataset {root}")
        raw = load_dataset(root, decisions=False)
        log = DecisionLog(raw.root)
        decisions = log.latest() if decisions_version is None else log.at(decisions_version)
        found = limit_per_class(raw, data.max_per_class, data.seed)
        for path, reason in found.skipped:
            say(f"skipped {path}: {reason}")
        cut = split_decided(found, decisions, duplicate_groups_for(found), data.split,
                            test_fraction=data.test_fraction, seed=data.seed, train_count=data.train_count,
                            test_count=data.test_count)
        dataset, groups, train, test = cut.dataset, cut.groups, cut.train, cut.test
        if decisions.version:
            say(f"label decisions version {decisions.version}: {dataset.decisions_applied} applied")
        if data.train_per_class > 0:
            dataset, groups, train, test = limit_train(dataset, groups, train, test, data.train_per_class, data.seed)
        self.dataset = dataset
        self.train_rows, self.test_rows = train, test
        self.folds = [(self.train_rows[a], self.train_rows[b]) for a, b in
                      kfold_indices(dataset.labels[self.train_rows], spec.folds, data.seed, class_names=dataset.classes,
                                    groups=groups[self.train_rows])]
        self.fingerprint = dataset.fingerprint()
        self._cuts: dict[tuple, str] = {}
        self._trial_data: dict[int, Any] = {}

    @classmethod
    def of_sweep(cls, store: Any, name: str, say: Say | None = None) -> SweepData:
        """The data of a stored sweep (`store`: a RunStore), with the decisions version it recorded."""
        return cls(store.spec(name), say=say, decisions_version=store.sweep(name).decisions_version)

    def trial_data(self, image_size: int, progress: Progress | None = None):
        """The images at one size (decoded once, `progress` sees that pass); the last two sizes kept."""
        from core.training.trial import TrialData
        if image_size not in self._trial_data:
            images = decoded_images(self.dataset, image_size, self.settings.cache_dir, progress=progress)
            self._trial_data[image_size] = TrialData(
                images=images, labels=self.dataset.labels, classes=self.dataset.classes,
                train_rows=self.train_rows, test_rows=self.test_rows, folds=self.folds,
                fingerprint=self.fingerprint, paths=self.dataset.paths)
            while len(self._trial_data) > SIZES_KEPT:
                self._trial_data.pop(next(iter(self._trial_data)))
        return self._trial_data[image_size]

    def base_cut(self, params: TrialParams) -> str:
        """The cut of the sweep's deepest trial for this backbone: the backbone runs once, up to it,
        and every other trainable-layers value derives its cache from that one."""
        from core.models.classifier import build_classifier
        deepest = dataclasses.replace(params, trainable_layers=self.spec.highest("trainable_layers"))
        key = (deepest.backbone, deepest.weights, deepest.image_size, deepest.trainable_layers)
        if key not in self._cuts:
            self._cuts[key] = build_classifier(deepest, len(self.dataset.classes), seed=self.spec.data.seed).cut
        return self._cuts[key]

    def backbone_images_per_s(self, batches: int = 3) -> float:
        """Images/s of EfficientNet-Lite0's full forward pass at 224 px (ImageNet weights) on this sweep's
        images, timed over `batches` batches after a warm-up one: the speed a time budget plans with
        (`core.search.budget`). Decodes the images at 224 first (the image cache keeps them)."""
        import time

        from core.models.classifier import build_classifier
        from core.training.activations import FORWARD_BATCH
        images = self.trial_data(224).images
        model = build_classifier(TrialParams(), len(self.dataset.classes), seed=self.spec.data.seed).bottom_model()
        x = np.asarray(images[:FORWARD_BATCH], dtype=np.float32)
        model.predict_on_batch(x)
        started = time.perf_counter()
        for _ in range(batches):
            model.predict_on_batch(x)
        return batches * len(x) / (time.perf_counter() - started)

    def runner(self, params: TrialParams, cache_progress: Progress | None = None, cached: bool | None = None,
               decode_progress: Progress | None = None):
        """A trial runner on this sweep's data at the trial's image size, sharing the activation cache
        (`cached`: override the spec's `use_cache`, as the speed benchmark does)."""
        from core.training.activations import ActivationCache
        from core.training.trial import TrialRunner
        seed = self.spec.data.seed
        cache = ActivationCache(self.settings.cache_dir) if (self.spec.use_cache if cached is None else cached) else None
        return TrialRunner(self.trial_data(params.image_size, decode_progress), cache, seed=seed,
                           weights_id=lambda p: weights_identity(p, seed), cache_progress=cache_progress)
