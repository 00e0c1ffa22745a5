"""How long the Predict page takes for one 224 px image: top-k prediction and Grad-CAM, cold and warm.

Builds the default classifier (EfficientNet-Lite0 with its shipped ImageNet weights + a
Dense(5, softmax) head, untrained: speed does not depend on the head's values) and times
cold (first) and warm (median of --repeats) calls.

    .venv/bin/python bench/predict_speed.py [--repeats 5] [--top-k 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(cold seconds, median warm seconds) of `call`."""
    start = time.perf_counter()
    call()
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    return cold, statistics.median(warm)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="warm runs to take the median of")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    import keras

    from core.inference.explain import gradcam
    from core.models.backbones import DEFAULT_BACKBONE, build_feature_extractor

    start = time.perf_counter()
    features = build_feature_extractor(DEFAULT_BACKBONE, 224)
    outputs = keras.layers.Dense(5, activation="softmax", name="predictions")(features.output)
    model = keras.Model(features.input, outputs)
    print(f"build {DEFAULT_BACKBONE} classifier with ImageNet weights: {time.perf_counter() - start:.2f} s")

    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)

    def predict_top_k() -> np.ndarray:
        scores = np.asarray(model(image[None].astype(np.float32), training=False))[0]
        return np.argsort(scores)[::-1][: args.top_k]

    cold, warm = timed(predict_top_k, args.repeats)
    print(f"predict top-{args.top_k}: cold {cold:.3f} s, warm {warm:.3f} s (median of {args.repeats})")
    top = int(predict_top_k()[0])
    for method in ("gradcam", "gradcam++"):
        cold, warm = timed(lambda: gradcam(model, image, top, method=method), args.repeats)
        print(f"{method}: cold {cold:.3f} s, warm {warm:.3f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
