"""How much the activation cache saves: one grid run the naive way and the cached way.

Both runs use the same images, folds, seeds and configurations in one process. Prints wall
times, their ratio, two floors and the sweep's time over each, peak memory, and the CV errors of
both side by side. The forward floor is one pass of the whole backbone over every image (images/s).
The training floor is the least compute the grid needs: that pass (the cache), then for every
configuration, fold and epoch the trained part's compiled train steps and validation forward pass,
timed alone on random activations of the cached shape (no model builds, compiles, input pipeline or
callbacks); the sweep's time over it is what overheads cost.

    .venv/bin/python bench/sweep_speed.py --backbone efficientnet_lite0 --per-class 60
    .venv/bin/python bench/sweep_speed.py --backbone resnet50v2 --weights none --per-class 40 \
        --trainable 1 2 3 --batch 32 64
    .venv/bin/python bench/sweep_speed.py --backbone resnet50v2 --weights none --per-class 0 \
        --trainable 1 2 3 4 5 6 7 8 9 10 --batch 32 64 128 --skip-naive      # the full report grid
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.models.accelerator import batch_sizes, gpu_count  # noqa: E402
from core.models.classifier import build_classifier  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.spec.sweep import SweepSpec, TrialParams  # noqa: E402
from core.training.plan import SweepData  # noqa: E402
from core.training.predictions import predict_scores  # noqa: E402
from core.training.trial import TrialData, TrialRunner, make_optimizer  # noqa: E402

TIMED_STEPS = 5

FLOWERS5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers5"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=str(FLOWERS5))
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", choices=("imagenet", "none"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--per-class", type=int, default=60, help="images per class (0 = all)")
    p.add_argument("--trainable", type=int, nargs="+", default=[0, 2], help="trainable-layer values of the grid")
    p.add_argument("--batch", type=int, nargs="+", default=[32], help="batch sizes of the grid")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--skip-naive", action="store_true", help="time only the cached sweep")
    return p.parse_args()


def floor_seconds(params: TrialParams, data: TrialData, classes: int) -> float:
    """One forward pass of the whole backbone over every image: the least any sweep must pay."""
    model = build_classifier(params, classes).model
    predict_scores(model, data.images, np.arange(min(32, len(data.images))))   # warm-up (graph tracing)
    start = time.perf_counter()
    predict_scores(model, data.images, np.arange(len(data.images)))
    return time.perf_counter() - start


def step_seconds(params: TrialParams, classes: int, batch_size: int, predict_size: int) -> tuple[float, float]:
    """Seconds of one compiled train step of `params`' trained part at `batch_size`, and of one forward pass
    at the prediction batch size, on random activations of the shape it reads from the cache."""
    top = build_classifier(params, classes).top_model()
    top.compile(optimizer=make_optimizer(params), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)

    def batch(size: int) -> np.ndarray | list[np.ndarray]:
        arrays = [rng.random((size, *t.shape[1:]), dtype=np.float32) for t in top.inputs]
        return arrays[0] if len(arrays) == 1 else arrays     # as the model's input structure is

    x, y = batch(batch_size), np.zeros(batch_size, "int32")
    predict_x = batch(predict_size)
    for _ in range(2):                                       # warm-up: tracing
        top.train_on_batch(x, y), top.predict_on_batch(predict_x)
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        top.train_on_batch(x, y)
    train_s = (time.perf_counter() - start) / TIMED_STEPS
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        top.predict_on_batch(predict_x)
    return train_s, (time.perf_counter() - start) / TIMED_STEPS


def training_floor_seconds(grid: list[TrialParams], data: TrialData, classes: int, epochs: int) -> list[float]:
    """Each configuration's train steps and validation passes over its folds (the cache pass not counted). A
    batch larger than a fold's train part is that part, as the training pipeline makes it."""
    predict_size = batch_sizes(gpu_count())[1]
    floors = []
    for params in grid:
        batch = min(params.batch_size, min(len(train_rows) for train_rows, _ in data.folds))
        train_s, forward_s = step_seconds(params, classes, batch, predict_size)
        floors.append(sum(epochs * (math.ceil(len(train_rows) / batch) * train_s
                                    + math.ceil(len(val_rows) / predict_size) * forward_s)
                          for train_rows, val_rows in data.folds))
    return floors


def run_grid(runner: TrialRunner, grid: list[TrialParams], base_cut: str | None = None
             ) -> tuple[float, list[float], list[float]]:
    """Whole time, then each configuration's CV error and seconds (as a sweep runs them)."""
    start = time.perf_counter()
    results = [runner.run(params, base_cut=base_cut) for params in grid]
    return time.perf_counter() - start, [r.value for r in results], [r.duration_s for r in results]


def main() -> None:
    args = parse_args()
    base = TrialParams(backbone=args.backbone, weights=args.weights, image_size=args.size, epochs=args.epochs,
                       early_stopping=0, reduce_lr=0)
    grid = [dataclasses.replace(base, trainable_layers=n, batch_size=b)
            for n, b in itertools.product(args.trainable, args.batch)]
    spec = SweepSpec.from_dict({"name": "bench", "folds": args.folds, "params": dataclasses.asdict(base),
                                "data": {"dataset": str(Path(args.dataset).resolve()), "max_per_class": args.per_class},
                                "search": {"space": {"trainable_layers": args.trainable, "batch_size": args.batch}}})
    with tempfile.TemporaryDirectory() as cache_dir:
        # As a sweep plans it (its split, folds and deepest cut), with the caches of this run only.
        sweep = SweepData(spec, dataclasses.replace(load_settings(), cache_dir=Path(cache_dir)))
        t0 = time.perf_counter()
        data = sweep.trial_data(args.size)
        decode_s = time.perf_counter() - t0
        report(args, sweep, data, base, grid, decode_s)


def report(args: argparse.Namespace, sweep: SweepData, data: TrialData, base: TrialParams,
           grid: list[TrialParams], decode_s: float) -> None:
    dataset = sweep.dataset
    print(f"{args.backbone} ({args.weights}) at {args.size}px, {len(dataset)} images, {len(dataset.classes)} classes; "
          f"grid {len(grid)} configs x {args.folds} folds x {args.epochs} epochs; decode/resize {decode_s:.1f}s")

    floor = floor_seconds(base, data, len(dataset.classes))
    print(f"floor: one forward pass {floor:.1f}s = {len(dataset) / floor:.1f} images/s")
    config_floors = training_floor_seconds(grid, data, len(dataset.classes), args.epochs)
    training_floor = floor + sum(config_floors)
    print(f"training floor: that pass, then the grid's train steps and validation passes {training_floor:.1f}s")

    # As a sweep does: the backbone runs once, up to the deepest configuration's cut.
    cached_s, cached_err, cached_t = run_grid(sweep.runner(base, cached=True), grid, sweep.base_cut(base))
    print(f"cached sweep: {cached_s:.1f}s = {cached_s / floor:.2f} x forward floor, "
          f"{cached_s / training_floor:.2f} x training floor")
    naive_s, naive_err, naive_t = (None, [None] * len(grid), [None] * len(grid))
    if not args.skip_naive:
        naive_s, naive_err, naive_t = run_grid(sweep.runner(base, cached=False), grid)
        print(f"naive sweep:  {naive_s:.1f}s; cached is {naive_s / cached_s:.1f}x faster")
    print("\n(floor s: the configuration's train steps and validation passes alone; the first cached trial also "
          "runs the backbone pass)")
    print("trainable  batch   CV error naive   CV error cached   naive s   cached s   floor s")
    for params, a, b, ta, tb, tf in zip(grid, naive_err, cached_err, naive_t, cached_t, config_floors):
        naive, naive_s_ = (f"{a:.4f}", f"{ta:.1f}") if a is not None else ("-", "-")
        print(f"{params.trainable_layers:>9}  {params.batch_size:>5}   {naive:>14}   {b:>15.4f}   "
              f"{naive_s_:>7}   {tb:>8.1f}   {tf:>7.1f}")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"\npeak memory (max RSS): {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
