"""Suspect labels and outliers among a sweep's training images, ranked by cleanlab.

Every trial already scores each training image with the fold model that did not see it (its
out-of-fold scores, `RunStore.oof`): exactly the out-of-sample probabilities cleanlab needs, with no
extra training. The outlier part reads the sweep's cached pooled backbone features.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.outlier import OutOfDistribution
from cleanlab.rank import get_label_quality_scores

from core.runs.records import OutOfFold, TrialRecord, ranked
from core.runs.store import RunStore
from core.spec.sweep import TrialParams

QUALITY_METHOD = "self_confidence"   # cleanlab's label-quality score: the probability of the given label


class SuspectsError(ValueError):
    """The sweep has nothing to rank yet; the message says why in one line."""


@dataclass(frozen=True)
class Suspect:
    """One training image in the ranking (rank 1 = most suspect)."""

    path: str
    given: str                         # the label its folder gives it
    suggested: str                     # the class the out-of-fold scores favour
    label_quality: float               # cleanlab's score in [0, 1]; low = the given label is doubtful
    rank: int
    flagged: bool                      # cleanlab's `find_label_issues` counts it as a label issue
    outlier_score: float | None = None  # cleanlab's out-of-distribution score in [0, 1] on pooled
    #                                    backbone features; near 0 = unlike the other images (None: not asked)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scored_trials(store: RunStore, sweep: str, count: int = 1) -> list[tuple[TrialRecord, OutOfFold]]:
    """The sweep's `count` best completed trials (lowest CV error first) that have out-of-fold scores."""
    found: list[tuple[TrialRecord, OutOfFold]] = []
    for trial in ranked(store.trials(sweep)):
        oof = store.oof(sweep, trial.number)
        if oof is not None:
            found.append((trial, oof))
        if len(found) == count:
            break
    if not found:
        raise SuspectsError(f"sweep {sweep!r} has no completed trial with out-of-fold scores yet: "
                            "run or resume it until a trial completes")
    return found


def mean_scores(oofs: list[OutOfFold]) -> OutOfFold:
    """The first trial's images with each image's class probabilities averaged over all the trials,
    aligned by path (images every trial scored). Averaging asks for agreement: one trial's quirk
    (a lucky fold, an odd learning rate) no longer puts an image at the top on its own."""
    first = oofs[0]
    rows = [{path: i for i, path in enumerate(oof.paths)} for oof in oofs]
    keep = [i for i, path in enumerate(first.paths) if all(path in r for r in rows)]
    paths = [first.paths[i] for i in keep]
    scores = np.mean([oof.scores[[r[p] for p in paths]] for oof, r in zip(oofs, rows)], axis=0)
    return OutOfFold(paths=paths, labels=first.labels[keep], classes=first.classes, folds=first.folds[keep],
                     scores=scores)


def label_ranking(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, quality, flagged): every image, cleanlab's label issues first (worst first), then the
    rest by label quality ascending."""
    quality = get_label_quality_scores(labels, probs, method=QUALITY_METHOD)
    issues = np.asarray(find_label_issues(labels, probs, return_indices_ranked_by=QUALITY_METHOD, n_jobs=1),
                        dtype=np.int64)
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[issues] = True
    rest = np.flatnonzero(~flagged)
    order = np.concatenate([issues, rest[np.argsort(quality[rest], kind="stable")]])
    return order, quality, flagged


def outlier_scores(store: RunStore, sweep: str, params: TrialParams) -> dict[str, float]:
    """Path -> cleanlab's out-of-distribution score of every training image of the sweep (its data as
    it recorded it), from the frozen pooled backbone features of `params` (read from the activation
    cache; the backbone runs only when it is cold)."""
    from core.training.plan import SweepData
    data = SweepData.of_sweep(store, sweep)
    features = data.runner(params).pooled_features(params)[data.train_rows]
    scores = OutOfDistribution().fit_score(features=features, verbose=False)
    return {data.dataset.paths[row]: float(score) for row, score in zip(data.train_rows, scores)}


def rank_suspects(store: RunStore, sweep: str, top_trials: int = 1, top: int | None = None,
                  with_outliers: bool = False) -> list[Suspect]:
    """Every training image of the sweep ranked by how doubtful its label is (the first `top` of them),
    from the out-of-fold scores of its best trial, or their mean over its `top_trials` best ones.

    `with_outliers` adds the outlier score; it runs the backbone when the activation cache is cold."""
    found = scored_trials(store, sweep, top_trials)
    oof = mean_scores([oof for _, oof in found])
    order, quality, flagged = label_ranking(oof.labels, oof.scores)
    outliers: dict[str, float] = {}
    if with_outliers:
        outliers = outlier_scores(store, sweep, store.spec(sweep).trial_params(found[0][0].params))
    suggested = oof.scores.argmax(axis=1)
    return [Suspect(path=oof.paths[i], given=oof.classes[oof.labels[i]], suggested=oof.classes[suggested[i]],
                    label_quality=float(quality[i]), rank=rank, flagged=bool(flagged[i]),
                    outlier_score=outliers.get(oof.paths[i]))
            for rank, i in enumerate(order[:top], start=1)]


def flagged_count(oof: OutOfFold) -> int:
    """How many of a trial's training images cleanlab flags as label issues, from its out-of-fold scores."""
    return int(label_ranking(oof.labels, oof.scores)[2].sum())
