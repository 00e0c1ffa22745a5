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
is accepted. The detector is plain arrays and numbers: its numbers travel in a model card (JSON), its arrays
as an .npz beside them (`card` / `arrays` / `from_card`). The k-NN bank is kept compact: float16 unit vectors
of a class-balanced subsample of at most MAX_BANK training images, its threshold set against that same bank.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp
from scipy.special import softmax as _softmax

METHODS = ("msp", "energy", "mahalanobis", "knn")
FEATURE_METHODS = ("mahalanobis", "knn")
ACCEPT = 0.95
K_NEIGHBOURS = 1
MAX_BANK = 2000            # k-NN bank rows kept: 2,000 x 1,280 float16 features of Lite0 is 5 MB
BANK_DTYPE = np.float16    # unit vectors: float16's 3 decimal digits move a distance by ~1e-3
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


def _bank(features: np.ndarray) -> np.ndarray:
    """The neighbour bank as kept: normalised rows in BANK_DTYPE, back to float64 for the products."""
    return _normalised(features).astype(BANK_DTYPE).astype(np.float64)


def balanced_rows(labels: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `cap` rows, as many of each class as the cap allows (a small class whole,
    the rest shared out evenly), drawn at random within each class."""
    labels = np.asarray(labels)
    if len(labels) <= cap:
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    position = np.empty(len(labels), dtype=np.int64)
    position[order] = np.arange(len(labels))
    return np.sort(np.lexsort((position, rank))[:cap])


def fit_statistics(method: str, features: np.ndarray, labels: np.ndarray) -> Statistics:
    """What `method` keeps of the training images: class means and a shared precision, or the neighbour bank."""
    if method == "mahalanobis":
        features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
        classes = np.unique(labels)
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, labels)]
        return {"means": means, "precision": _shrunk_precision(centred)}
    if method == "knn":
        return {"bank": _bank(features)}
    return {}


def _shrunk_precision(centred: np.ndarray) -> np.ndarray:
    """The inverse of the Ledoit-Wolf covariance of `centred` (n, D), (1 - s) X'X / n + s mu I, without the
    eigendecomposition scikit-learn's LedoitWolf runs for it (seconds at D = 1,280): by Cholesky, or with
    fewer images than dimensions by the Woodbury identity, which inverts an n x n matrix instead."""
    from scipy.linalg import cho_factor, cho_solve
    from sklearn.covariance import ledoit_wolf_shrinkage
    n, d = centred.shape
    shrinkage = ledoit_wolf_shrinkage(centred, assume_centered=True)
    ridge = max(shrinkage * np.sum(centred ** 2) / (n * d), 1e-12)   # s mu: the identity's weight
    if n >= d or shrinkage >= 1.0:
        covariance = (1.0 - shrinkage) * (centred.T @ centred) / n + ridge * np.eye(d)
        return cho_solve(cho_factor(covariance), np.eye(d))
    gram = centred @ centred.T + (n * ridge / (1.0 - shrinkage)) * np.eye(n)
    return (np.eye(d) - centred.T @ cho_solve(cho_factor(gram), centred)) / ridge


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


def _out_of_fold_scores(method: str, outputs: FoldOutputs, known: np.ndarray, k: int,
                        in_bank: np.ndarray | None = None) -> np.ndarray:
    """Every image's score from a detector fitted on the other folds' images of the `known` classes only
    (all classes, or all but one: then the logits are those of heads fitted without it). The neighbour
    search leaves out just the image itself: a bank one image smaller than the final one, so its distances,
    and the threshold set on them, are those new images meet (a fold smaller bank puts them further).
    `in_bank`: the rows the final bank keeps (default all), so the threshold is set against that bank."""
    labels, folds = outputs.labels, outputs.folds
    keep = np.isin(labels, known)
    if method == "knn":
        if in_bank is not None:
            keep &= in_bank
        bank, itself = _bank(outputs.features[keep]), np.full(len(labels), -1)
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
    from sklearn.metrics import roc_auc_score
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

    def card(self) -> dict:
        """Everything but the statistics, as plain JSON (a model card's `open_set`)."""
        return {"method": self.method, "threshold": self.threshold, "accept": self.accept, "k": self.k,
                "held_out_auroc": dict(self.held_out_auroc)}

    def arrays(self) -> dict[str, np.ndarray]:
        """The statistics as stored beside the card: the k-NN bank in BANK_DTYPE, the rest float32."""
        return {name: value.astype(BANK_DTYPE if name == "bank" else np.float32)
                for name, value in self.statistics.items()}

    @classmethod
    def from_card(cls, card: dict, arrays: dict[str, np.ndarray]) -> OpenSetDetector:
        """The detector `card` and `arrays` describe (a ValueError names what is missing or wrong)."""
        try:
            method, k = card["method"], int(card["k"])
            threshold, accept = float(card["threshold"]), float(card["accept"])
            auroc = {str(m): float(v) for m, v in dict(card.get("held_out_auroc") or {}).items()}
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the open-set detector's card is incomplete or malformed ({error!r})") from None
        if method not in METHODS:
            raise ValueError(f"unknown open-set method {method!r}")
        needed = {"mahalanobis": {"means", "precision"}, "knn": {"bank"}}.get(method, set())
        if not needed <= set(arrays):
            raise ValueError(f"the {method} detector needs the arrays {', '.join(sorted(needed))}")
        return cls(method=method, threshold=threshold, accept=accept, k=k, held_out_auroc=auroc,
                   statistics={name: np.asarray(arrays[name], dtype=np.float64) for name in needed})

    def to_json(self) -> dict:
        """Plain JSON: the card, and the statistics as base64 float32 arrays with their shapes."""
        return {**self.card(), "statistics": {name: _encode(value) for name, value in self.statistics.items()}}

    @classmethod
    def from_json(cls, d: dict) -> OpenSetDetector:
        return cls.from_card(d, {name: _decode(value) for name, value in d["statistics"].items()})


def fit_open_set(outputs: FoldOutputs, methods: tuple[str, ...] = METHODS, accept: float = ACCEPT,
                 k: int = K_NEIGHBOURS, max_bank: int = MAX_BANK) -> OpenSetDetector:
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
    return fit_detector(outputs, method, accept, k, held_out_auroc=compared, max_bank=max_bank)


def fit_detector(outputs: FoldOutputs, method: str, accept: float = ACCEPT, k: int = K_NEIGHBOURS,
                 held_out_auroc: dict[str, float] | None = None, max_bank: int | None = MAX_BANK) -> OpenSetDetector:
    """`method` fitted on every training image, its threshold accepting `accept` of the out-of-fold scores;
    a k-NN bank keeps a class-balanced `max_bank` of them (None: all), every image scored against it."""
    classes = np.unique(outputs.labels)
    in_bank = np.ones(len(outputs.labels), dtype=bool)
    if method == "knn" and max_bank is not None:
        in_bank = np.zeros(len(outputs.labels), dtype=bool)
        in_bank[balanced_rows(outputs.labels, max_bank)] = True
    threshold = float(np.quantile(_out_of_fold_scores(method, outputs, classes, k, in_bank), accept))
    statistics = fit_statistics(method, outputs.features[in_bank], outputs.labels[in_bank]) \
        if method in FEATURE_METHODS else {}
    return OpenSetDetector(method=method, threshold=threshold, accept=accept, statistics=statistics, k=k,
                           held_out_auroc=dict(held_out_auroc or {}))
