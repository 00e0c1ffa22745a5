"""Does an image look like none of the classes? Out-of-distribution detectors fitted on what K-fold CV gives for free.

Every training image has features and logits from a fold model that never saw it. Four detectors score how
unknown an image looks (higher: less like the training images):

- `msp`: one minus the top softmax probability (the baseline every classifier already has);
- `energy`: minus the log-sum-exp of the logits (Liu et al., 2020; needs real logits, not probabilities);
- `mahalanobis`: the squared Mahalanobis distance to the nearest class mean, one shared covariance
  (Lee et al., 2018), Ledoit-Wolf shrunk since the pooled features outnumber the images per class;
- `knn`: the distance to the k-th nearest training image on L2-normalised features (Sun et al., 2022),
  square-rooted first (signed), the usual power normalisation of pooled CNN features; k = 1 by default
  (on flowers5 the nearest neighbour separated a held-out flower class best, `bench/open_set.py`).

Which one works depends on the data, so each is scored on held-out data the training set already holds:
every class in turn plays the unknown (left out of the class means and the neighbour bank), every image
scored by a detector fitted on the other folds. The logit detectors take part only with logits of heads
fitted without each class (`FoldOutputs.held_out_logits`): dropping a class's logit from a head that saw
it flatters them (energy 0.97 AUROC that way on flowers5, 0.75 on a class truly never seen). The best by
mean AUROC is kept, and its
threshold set on the out-of-fold scores so that a chosen share (default 95%) of in-distribution images
is accepted. The detector is plain arrays and numbers, so it travels as JSON (model card, exports).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp
from scipy.special import softmax as _softmax
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

METHODS = ("msp", "energy", "mahalanobis", "knn")
FEATURE_METHODS = ("mahalanobis", "knn")
ACCEPT = 0.95
K_NEIGHBOURS = 1
CHUNK = 1024
Statistics = dict[str, np.ndarray]


@dataclass(frozen=True)
class FoldOutputs:
    """What K-fold CV gives for every training image: its pooled features, the out-of-fold logits of the fold
    model that never saw it, its label and that fold. `true_logits` False: the logits are log-probabilities
    (a model that outputs probabilities only), which serve msp but leave energy meaningless.
    `held_out_logits[c]`: (n, C - 1) out-of-fold logits of heads fitted without class c, for comparing the
    logit detectors on held-out classes (without them only the feature detectors are compared)."""

    features: np.ndarray   # (n, D)
    logits: np.ndarray     # (n, C)
    labels: np.ndarray     # (n,) int
    folds: np.ndarray      # (n,) int
    true_logits: bool = True
    held_out_logits: dict[int, np.ndarray] | None = None


def _normalised(features: np.ndarray) -> np.ndarray:
    """Signed square root, then unit length: the neighbour search's view of the features."""
    features = np.asarray(features, dtype=np.float64)
    features = np.sign(features) * np.sqrt(np.abs(features))
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def fit_statistics(method: str, features: np.ndarray, labels: np.ndarray) -> Statistics:
    """What `method` keeps of the training images: class means and a shared precision, or the neighbour bank."""
    if method == "mahalanobis":
        features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
        classes = np.unique(labels)
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, labels)]
        return {"means": means, "precision": LedoitWolf(assume_centered=True).fit(centred).precision_}
    if method == "knn":
        return {"bank": _normalised(features)}
    return {}


def unknown_scores(method: str, statistics: Statistics, logits: np.ndarray | None = None,
                   features: np.ndarray | None = None, k: int = K_NEIGHBOURS) -> np.ndarray:
    """How unknown each image looks to `method` (higher: less like the training images)."""
    if method in FEATURE_METHODS and features is None:
        raise ValueError(f"the {method} detector needs the pooled features of the images")
    if method not in FEATURE_METHODS and logits is None:
        raise ValueError(f"the {method} detector needs the logits of the images")
    if method == "msp":
        return 1.0 - _softmax(np.asarray(logits, dtype=np.float64), axis=1).max(axis=1)
    if method == "energy":
        return -logsumexp(np.asarray(logits, dtype=np.float64), axis=1)
    if method == "mahalanobis":
        return np.concatenate([_mahalanobis(statistics, np.asarray(features[i:i + CHUNK], dtype=np.float64))
                               for i in range(0, len(features), CHUNK)])
    if method == "knn":
        bank, k = statistics["bank"], min(k, len(statistics["bank"]))
        return np.concatenate([_kth_distance(bank, _normalised(features[i:i + CHUNK]), k)
                               for i in range(0, len(features), CHUNK)])
    raise ValueError(f"unknown open-set method {method!r}; choose one of {', '.join(METHODS)}")


def _mahalanobis(statistics: Statistics, x: np.ndarray) -> np.ndarray:
    """Squared distance to the nearest class mean under the shared precision."""
    means, precision = statistics["means"], statistics["precision"]
    projected = x @ precision
    distances = (np.sum(projected * x, axis=1)[:, None] - 2.0 * projected @ means.T
                 + np.sum((means @ precision) * means, axis=1)[None, :])
    return distances.min(axis=1)


def _kth_distance(bank: np.ndarray, x: np.ndarray, k: int, itself: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance (unit vectors) from each row of `x` to its k-th nearest row of `bank`; `itself[i]`:
    the bank row that is row i of `x` (skipped), or -1."""
    similarity = x @ bank.T
    if itself is not None:
        held = np.flatnonzero(itself >= 0)
        similarity[held, itself[held]] = -np.inf
    similarity = np.partition(similarity, -k, axis=1)[:, -k]
    return np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, None))


def _out_of_fold_scores(method: str, outputs: FoldOutputs, known: np.ndarray, k: int) -> np.ndarray:
    """Every image's score from a detector fitted on the other folds' images of the `known` classes only
    (all classes, or all but one: then the logits are those of heads fitted without it). The neighbour
    search leaves out just the image itself: a bank one image smaller than the final one, so its distances,
    and the threshold set on them, are those new images meet (a fold smaller bank puts them further)."""
    labels, folds = outputs.labels, outputs.folds
    keep = np.isin(labels, known)
    if method == "knn":
        bank, itself = _normalised(outputs.features[keep]), np.full(len(labels), -1)
        itself[keep] = np.arange(keep.sum())
        return np.concatenate([_kth_distance(bank, _normalised(outputs.features[i:i + CHUNK]), min(k, len(bank) - 1),
                                             itself[i:i + CHUNK]) for i in range(0, len(labels), CHUNK)])
    left_out = np.setdiff1d(np.unique(labels), known)
    logits = outputs.logits if not len(left_out) or method in FEATURE_METHODS else \
        outputs.held_out_logits[int(left_out[0])]
    scores = np.empty(len(labels))
    for fold in np.unique(folds):
        held, fit_rows = folds == fold, (folds != fold) & keep
        statistics = fit_statistics(method, outputs.features[fit_rows], labels[fit_rows]) \
            if method in FEATURE_METHODS else {}
        scores[held] = unknown_scores(method, statistics, logits=logits[held], features=outputs.features[held])
    return scores


def held_out_class_auroc(method: str, outputs: FoldOutputs, k: int = K_NEIGHBOURS) -> float:
    """Mean AUROC over the classes, each in turn the unknown to a detector fitted without it (NaN for a
    logit method without held-out logits, or with fewer than three classes: one class left has no softmax)."""
    classes = np.unique(outputs.labels)
    if method not in FEATURE_METHODS and (len(classes) < 3 or outputs.held_out_logits is None):
        return float("nan")
    aurocs = []
    for unknown in classes:
        scores = _out_of_fold_scores(method, outputs, classes[classes != unknown], k)
        aurocs.append(roc_auc_score(outputs.labels == unknown, scores))
    return float(np.mean(aurocs))


def _encode(array: np.ndarray) -> dict:
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(data.shape), "float32": base64.b64encode(data.tobytes()).decode("ascii")}


def _decode(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["float32"]), dtype="<f4").reshape(d["shape"]).astype(np.float64)


@dataclass
class OpenSetDetector:
    """One fitted detector and its threshold: an image scoring above `threshold` looks like none of the classes."""

    method: str
    threshold: float
    accept: float                                  # share of out-of-fold training images the threshold accepts
    statistics: Statistics = field(default_factory=dict, repr=False)
    k: int = K_NEIGHBOURS
    held_out_auroc: dict[str, float] = field(default_factory=dict)   # every method compared, the kept one best

    def scores(self, logits: np.ndarray | None = None, features: np.ndarray | None = None) -> np.ndarray:
        return unknown_scores(self.method, self.statistics, logits=logits, features=features, k=self.k)

    def refuses(self, logits: np.ndarray | None = None, features: np.ndarray | None = None) -> np.ndarray:
        """True where an image looks like none of the classes."""
        return self.scores(logits=logits, features=features) > self.threshold

    def to_json(self) -> dict:
        """Plain JSON: the statistics as base64 float32 arrays with their shapes."""
        return {"method": self.method, "threshold": self.threshold, "accept": self.accept, "k": self.k,
                "held_out_auroc": dict(self.held_out_auroc),
                "statistics": {name: _encode(value) for name, value in self.statistics.items()}}

    @classmethod
    def from_json(cls, d: dict) -> OpenSetDetector:
        return cls(method=d["method"], threshold=float(d["threshold"]), accept=float(d["accept"]), k=int(d["k"]),
                   held_out_auroc={m: float(v) for m, v in d.get("held_out_auroc", {}).items()},
                   statistics={name: _decode(value) for name, value in d["statistics"].items()})


def fit_open_set(outputs: FoldOutputs, methods: tuple[str, ...] = METHODS, accept: float = ACCEPT,
                 k: int = K_NEIGHBOURS) -> OpenSetDetector:
    """The best of `methods` on held-out classes, fitted on every training image, its threshold accepting
    `accept` of the out-of-fold scores. Energy is left out when the logits are log-probabilities."""
    if outputs.held_out_logits is not None and set(outputs.held_out_logits) != set(np.unique(outputs.labels).tolist()):
        raise ValueError("held-out logits for every class are needed, or none")
    usable = [m for m in methods if m != "energy" or outputs.true_logits]
    if not usable:
        raise ValueError(f"none of {', '.join(methods)} can be fitted on these outputs (energy needs real logits)")
    compared = {m: held_out_class_auroc(m, outputs, k) for m in usable}
    ranked = [m for m in usable if not np.isnan(compared[m])]
    method = max(ranked, key=lambda m: compared[m]) if ranked else usable[0]
    return fit_detector(outputs, method, accept, k, held_out_auroc=compared)


def fit_detector(outputs: FoldOutputs, method: str, accept: float = ACCEPT, k: int = K_NEIGHBOURS,
                 held_out_auroc: dict[str, float] | None = None) -> OpenSetDetector:
    """`method` fitted on every training image, its threshold accepting `accept` of the out-of-fold scores."""
    classes = np.unique(outputs.labels)
    threshold = float(np.quantile(_out_of_fold_scores(method, outputs, classes, k), accept))
    statistics = fit_statistics(method, outputs.features, outputs.labels) if method in FEATURE_METHODS else {}
    return OpenSetDetector(method=method, threshold=threshold, accept=accept, statistics=statistics, k=k,
                           held_out_auroc=dict(held_out_auroc or {}))
