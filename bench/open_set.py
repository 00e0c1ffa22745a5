"""Does the model know what it does not know? Open-set detection and calibration on a folder dataset.

Near unknowns: train on all classes but one (the app's logistic-regression trial kind on frozen, pooled
EfficientNet-Lite0 features, K-fold out-of-fold logits for fitting) and show it the left-out class; every
class in turn. Far unknowns: scikit-image's sample photos (a cat, an astronaut, coins, text...) and their
crops, and generated textures (noise, stripes, checkerboards, gradients, blobs). For each detector of
`core.quality.open_set` (the logit ones compared on held-out classes with heads refitted without each
class): AUROC (unknown vs the known classes' test images) and the false accept rate at
95% true accept (share of unknowns scoring under the known test images' 95th percentile), beside the
max-softmax baseline; the detector the app keeps (best on held-out classes of the training part) is
starred, with the share its own out-of-fold threshold accepts and refuses. Then temperature scaling on the
full dataset: ECE of the test split before and after, fitted on the out-of-fold logits.

    .venv/bin/python bench/open_set.py ../shared/datasets/flowers5
    .venv/bin/python bench/open_set.py DATASET --folds 5 --figure reliability.png
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from core.quality.open_set import (  # noqa: E402
    METHODS,
    FoldOutputs,
    OpenSetDetector,
    fit_detector,
    fit_open_set,
)
from core.quality.unknowns import image_features  # noqa: E402
from core.results.calibration import fit_temperature, reliability, softmax  # noqa: E402
from core.runs.evaluation import wilson_interval  # noqa: E402
from core.spec.sweep import SweepSpec, TrialParams  # noqa: E402

PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel",
          "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page",
          "retina", "rocket", "text", "cell", "stereo_motorcycle", "horse")
TRUE_ACCEPT = 0.95


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accept", type=float, default=0.95, help="share of known images the threshold accepts")
    p.add_argument("--crops", type=int, default=3, help="random crops of each sample photo, besides the photo")
    p.add_argument("--textures", type=int, default=60)
    p.add_argument("--figure", type=Path, help="write the test split's reliability diagram here (PNG)")
    return p.parse_args()


def _rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64 if np.asarray(array).dtype == bool else None)
    if array.dtype != np.uint8:
        array = np.rint(255 * (array - array.min()) / max(float(np.ptp(array)), 1e-12)).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return array[..., :3]


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """One generated texture: smoothed noise, stripes, a checkerboard, a gradient or blobs, in random colours."""
    from scipy.ndimage import gaussian_filter
    from skimage.data import binary_blobs
    y, x = np.mgrid[0:size, 0:size] / size
    kind = rng.integers(5)
    if kind == 0:
        field = gaussian_filter(rng.normal(size=(size, size)), sigma=rng.uniform(1, 12))
    elif kind == 1:
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(3, 30)
        field = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)))
    elif kind == 2:
        cells = rng.integers(2, 16)
        field = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(float)
    elif kind == 3:
        angle = rng.uniform(0, 2 * np.pi)
        field = x * np.cos(angle) + y * np.sin(angle)
    else:
        field = binary_blobs(size, blob_size_fraction=rng.uniform(0.05, 0.3), rng=int(rng.integers(1 << 30))
                             ).astype(float)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    low, high = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    return np.rint(low + field[..., None] * (high - low)).astype(np.uint8)


def far_images(size: int, crops: int, textures: int, seed: int) -> list[np.ndarray]:
    """The sample photos, `crops` random crops of each, and generated textures, as the app reads an upload
    (encoded, then decoded and resized by `core.data.images.load_image`)."""
    import skimage.data
    from core.data.images import load_image
    rng = np.random.default_rng(seed)
    pictures = []
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        photo = _rgb(photo[0] if isinstance(photo, tuple) else photo)
        pictures.append(photo)
        for _ in range(crops):
            side = int(min(photo.shape[:2]) * rng.uniform(0.4, 0.7))
            top, left = rng.integers(photo.shape[0] - side + 1), rng.integers(photo.shape[1] - side + 1)
            pictures.append(photo[top:top + side, left:left + side])
    pictures += [_texture(rng, 256) for _ in range(textures)]
    out = []
    for picture in pictures:
        encoded = io.BytesIO()
        Image.fromarray(picture).save(encoded, format="PNG")
        out.append(load_image(encoded.getvalue(), size))
    return out


def out_of_fold_logits(params: TrialParams, features: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                       classes: int, without: int | None = None) -> np.ndarray:
    """Every training row's logits from the app's logistic-regression trial fitted on the other folds (and,
    with `without`, on every class but that one: the held-out logits the open-set selection compares)."""
    kept = [c for c in range(classes) if c != without]
    relabel = np.full(classes, -1)
    relabel[kept] = np.arange(len(kept))
    logits = np.zeros((len(labels), len(kept)))
    for fold in np.unique(folds):
        held, fit = folds == fold, (folds != fold) & (labels != without)
        logits[held] = logit_model(params, features[fit], relabel[labels[fit]], len(kept))(features[held])
    return logits


def logit_model(params: TrialParams, features: np.ndarray, labels: np.ndarray, classes: int):
    """The app's logreg trial kind (scaler + scikit-learn), as a function from features to logits."""
    from core.training.features_kinds import fit_features
    fitted = fit_features(params, features, labels, classes)
    return lambda x: fitted.estimator.decision_function(fitted.scaler.transform(x))


def rates(detector: OpenSetDetector, known: tuple, unknown: tuple) -> dict[str, float]:
    """AUROC and the false accept rate at 95% true accept (on the known test images) of unknown vs known;
    and the shares the detector's own threshold accepts."""
    inside, outside = detector.scores(*known), detector.scores(*unknown)
    truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    at_95 = np.quantile(inside, TRUE_ACCEPT)
    return {"auroc": roc_auc_score(truth, np.r_[inside, outside]), "far95": float(np.mean(outside <= at_95)),
            "refused": float(np.mean(outside > detector.threshold)),
            "accepted": float(np.mean(inside <= detector.threshold))}


def main() -> None:
    args = parse_args()
    from core.training.plan import SweepData
    spec = SweepSpec.from_dict({"name": "open-set", "folds": args.folds, "params": {"kind": "logreg"},
                                "data": {"dataset": str(args.dataset.resolve()), "test_fraction": args.test_fraction,
                                         "seed": args.seed}})
    data = SweepData(spec, say=lambda line: print(f"  {line}", file=sys.stderr))
    params, classes = spec.params, data.dataset.classes
    print("pooled features (activation cache)...", file=sys.stderr)
    features = data.runner(params, cached=True).pooled_features(params)
    labels, train, test = data.dataset.labels, data.train_rows, data.test_rows
    fold_of = np.full(len(labels), -1)
    for k, (_, val) in enumerate(data.folds):
        fold_of[val] = k
    print("far-away images...", file=sys.stderr)
    far = image_features(params, np.stack(far_images(params.image_size, args.crops, args.textures, args.seed)),
                         len(classes), args.seed)

    results: dict[str, dict[str, list[dict]]] = {m: {"near": [], "far": []} for m in (*METHODS, "chosen")}
    for unknown, name in enumerate(classes):
        known = np.array([c for c in range(len(classes)) if c != unknown])
        relabel = np.full(len(classes), -1)
        relabel[known] = np.arange(len(known))
        rows = train[labels[train] != unknown]
        y, folds = relabel[labels[rows]], fold_of[rows]
        outputs = FoldOutputs(features=features[rows], labels=y, folds=folds,
                              logits=out_of_fold_logits(params, features[rows], y, folds, len(known)),
                              held_out_logits={c: out_of_fold_logits(params, features[rows], y, folds, len(known), c)
                                               for c in range(len(known))})
        logits = logit_model(params, outputs.features, outputs.labels, len(known))
        known_test = test[labels[test] != unknown]
        sets = {"known": known_test, "near": np.flatnonzero(labels == unknown)}
        inputs = {key: (logits(features[r]), features[r]) for key, r in sets.items()}
        inputs["far"] = (logits(far), far)
        chosen = fit_open_set(outputs, accept=args.accept)
        print(f"unknown {name}: held-out-class AUROC "
              + ", ".join(f"{m} {v:.3f}" for m, v in chosen.held_out_auroc.items())
              + f" -> {chosen.method}", file=sys.stderr)
        for method in METHODS:
            detector = chosen if method == chosen.method else fit_detector(outputs, method, args.accept)
            for split in ("near", "far"):
                results[method][split].append(rates(detector, inputs["known"], inputs[split]))
        for split in ("near", "far"):
            results["chosen"][split].append(results[chosen.method][split][-1])

    print(f"\n{args.dataset.name}: {args.folds}-fold out-of-fold fitting, each of {len(classes)} classes in turn "
          f"unknown; far: {len(far)} images; threshold from out-of-fold scores at {args.accept:.0%} accept")
    print(f"{'detector':<13}{'near AUROC':>11}{'near FAR95':>11}{'far AUROC':>11}{'far FAR95':>10}"
          f"{'known acc.':>11}{'near ref.':>10}{'far ref.':>10}")
    for method, splits in results.items():
        mean = {split: {key: np.mean([r[key] for r in runs]) for key in runs[0]} for split, runs in splits.items()}
        star = " (base)" if method == "msp" else (" *" if method == "chosen" else "")
        print(f"{method + star:<13}{mean['near']['auroc']:>11.3f}{mean['near']['far95']:>11.3f}"
              f"{mean['far']['auroc']:>11.3f}{mean['far']['far95']:>10.3f}{mean['near']['accepted']:>11.3f}"
              f"{mean['near']['refused']:>10.3f}{mean['far']['refused']:>10.3f}")
    print("FAR95: unknowns accepted when 95% of known test images are; known acc. / near ref. / far ref.: "
          "shares the detector's own out-of-fold threshold accepts / refuses; * the detector kept per held-out class")
    calibration(args, params, features, labels, train, test, fold_of, classes)


def calibration(args: argparse.Namespace, params: TrialParams, features: np.ndarray, labels: np.ndarray,
                train: np.ndarray, test: np.ndarray, fold_of: np.ndarray, classes: list[str]) -> None:
    """Temperature scaling on all classes: fitted on the out-of-fold logits, the test split before and after."""
    oof = out_of_fold_logits(params, features[train], labels[train], fold_of[train], len(classes))
    temperature = fit_temperature(oof, labels[train])
    test_logits = logit_model(params, features[train], labels[train], len(classes))(features[test])
    before = reliability(softmax(test_logits), labels[test])
    after = reliability(softmax(test_logits, temperature), labels[test])
    right = int(np.sum(test_logits.argmax(1) == labels[test]))
    low, high = wilson_interval(right, len(test))
    print(f"\ncalibration, all {len(classes)} classes, test split ({len(test)} images; accuracy {right / len(test):.3f},"
          f" 95% interval {low:.3f}-{high:.3f}): temperature {temperature:.3f} from the out-of-fold logits; "
          f"ECE before {before.ece:.4f}, after {after.ece:.4f}")
    if args.figure:
        from core.results.charts import fig_to_png, reliability_diagram
        args.figure.write_bytes(fig_to_png(reliability_diagram({"before": before, "after": after})))
        print(f"reliability diagram: {args.figure}")


if __name__ == "__main__":
    main()
