"""What this machine's device does for Transfer Lab: the check to run on a GPU machine (issue 22).

Prints, for the GPU TensorFlow sees (else for the CPU, saying no GPU was seen): the backbone's
images/s at each batch for float32, float16 and bf16 with XLA on and off; a fine-tuning step's time;
peak GPU memory; the retraces of a small cached sweep (0 wanted); a head's trial with one and with several
train steps per execution; and which GPU each of N local worker
processes was given and saw. The defaults finish in under 5 minutes on one GPU; on a CPU use a small
setting:

    .venv/bin/python bench/device.py                      # a GPU machine: batches 32 256 512
    .venv/bin/python bench/device.py --batches 8 32 --size 128 --repeats 2 --workers 2    # a CPU
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.models.accelerator import PRECISIONS  # noqa: E402
from core.search.placement import local_shares  # noqa: E402
from core.spec.sweep import TrialParams  # noqa: E402

WORKER_PROBE = ("import json, os; import tensorflow as tf; from core.data.images import usable_cpus; "
                "names = [tf.config.experimental.get_device_details(g).get('device_name', g.name) "
                "for g in tf.config.list_physical_devices('GPU')]; "
                "print(json.dumps({'CUDA_VISIBLE_DEVICES': os.environ.get('CUDA_VISIBLE_DEVICES'), "
                "'cpus': usable_cpus(), 'sees': names}))")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batches", type=int, nargs="+", default=[32, 256, 512])
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per row, after one warm-up call")
    p.add_argument("--workers", type=int, default=2, help="local worker processes to place (0: skip)")
    return p.parse_args()


def backbone_rows(args: argparse.Namespace) -> None:
    """Images/s of the backbone's forward pass (the activation cache's pass) per precision, XLA, batch."""
    import keras

    from core.models.classifier import build_classifier
    print(f"\n{'precision':16} {'XLA':4} {'batch':>6} {'images/s':>10} {'first call s':>13}")
    for precision, xla in itertools.product(args.precisions, (False, True)):
        keras.mixed_precision.set_global_policy(precision)
        params = TrialParams(backbone=args.backbone, weights="none", image_size=args.size)
        model = build_classifier(params, 5).bottom_model()
        model.compile(jit_compile=xla)
        for batch in args.batches:
            x = np.random.default_rng(0).uniform(0, 255, (batch, args.size, args.size, 3)).astype(np.float32)
            try:
                started = time.perf_counter()
                model.predict_on_batch(x)
                first = time.perf_counter() - started
                started = time.perf_counter()
                for _ in range(args.repeats):
                    model.predict_on_batch(x)
                rate = args.repeats * batch / (time.perf_counter() - started)
                print(f"{precision:16} {'on' if xla else 'off':4} {batch:6d} {rate:10.1f} {first:13.2f}", flush=True)
            except Exception as error:          # out of memory at a batch, a kernel missing for a dtype
                print(f"{precision:16} {'on' if xla else 'off':4} {batch:6d} {'failed':>10}  "
                      f"{type(error).__name__}: {str(error).splitlines()[0][:80]}", flush=True)
        keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    print("(each batch size above is a new input shape, traced on purpose: TensorFlow may warn of retracing here)")


def fine_tune_row(args: argparse.Namespace, precision: str, xla: bool) -> None:
    """Seconds of one training step of the whole classifier (10 trainable layers, images in), batch 32."""
    import keras

    from core.models.classifier import build_classifier
    from core.training.trial import make_optimizer
    keras.mixed_precision.set_global_policy(precision)
    params = TrialParams(backbone=args.backbone, weights="none", image_size=args.size, trainable_layers=10)
    model = build_classifier(params, 5).model
    model.compile(optimizer=make_optimizer(params), loss="sparse_categorical_crossentropy", jit_compile=xla)
    x = np.random.default_rng(0).uniform(0, 255, (32, args.size, args.size, 3)).astype(np.float32)
    y = np.arange(32) % 5
    model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(args.repeats):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - started) / args.repeats
    print(f"\nfine-tuning step (batch 32, 10 trainable layers, {precision}, XLA {'on' if xla else 'off'}): "
          f"{step * 1000:.0f} ms")
    keras.backend.clear_session()


def small_data(n: int = 36):
    """`n` generated 64 px images of 3 colour classes, a train part of two interleaved folds."""
    from core.training.trial import TrialData
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    images = np.clip(rng.normal(80 * labels[:, None, None, None], 30, (n, 64, 64, 3)), 0, 255).astype(np.uint8)
    train, test = np.arange(n * 4 // 5), np.arange(n * 4 // 5, n)
    folds = [(train[train % 2 != k], train[train % 2 == k]) for k in (0, 1)]
    return TrialData(images=images, labels=labels, classes=["a", "b", "c"], train_rows=train, test_rows=test,
                     folds=folds, fingerprint=f"bench-device-{n}")


def steps_row() -> None:
    """A head's trial on cached activations (1,000 images, batch 32, 2 folds x 10 epochs), timed with one train
    step per execution and with the device's count (`TRANSFERLAB_STEPS_PER_EXECUTION`, 16 on a GPU)."""
    import dataclasses

    from core.models.accelerator import GPU_STEPS_PER_EXECUTION
    from core.training.activations import ActivationCache
    from core.training.trial import TrialRunner
    params = TrialParams(backbone="mobilenetv2", weights="none", image_size=64, epochs=10, batch_size=32,
                         early_stopping=0, reduce_lr=0)
    with tempfile.TemporaryDirectory() as cache:
        runner = TrialRunner(small_data(1000), ActivationCache(Path(cache)))
        counts = sorted({1, runner.device.steps_per_execution, GPU_STEPS_PER_EXECUTION})
        row = []
        for timed in (False, True):                  # first the cache and each setting's first traces
            for steps in counts:
                runner.device = dataclasses.replace(runner.device, steps_per_execution=steps)
                started = time.perf_counter()
                runner.run(params if timed else dataclasses.replace(params, epochs=1))
                row += [f"{steps}: {time.perf_counter() - started:.1f} s"] if timed else []
    print(f"a head's trial on cached activations, by train steps per execution: {', '.join(row)}")


def retrace_row(device_precision: str) -> None:
    """Retraces of a small cached sweep as the trials run it: 4 trials x 2 folds on 36 generated images."""
    import keras

    from core.training.activations import ActivationCache
    from core.training.tracing import retraces, traced_shapes
    from core.training.trial import TrialRunner
    keras.mixed_precision.set_global_policy(device_precision)
    data = small_data()
    with tempfile.TemporaryDirectory() as cache, traced_shapes() as shapes:
        runner = TrialRunner(data, ActivationCache(Path(cache)))
        for trainable, rate in [(0, 1e-3), (0, 1e-2), (2, 1e-3), (2, 1e-2)]:
            runner.run(TrialParams(backbone="mobilenetv2", weights="none", image_size=64, epochs=2, batch_size=8,
                                   early_stopping=0, reduce_lr=0, trainable_layers=trainable, learning_rate=rate))
    print(f"retraces in a small cached sweep (4 trials x 2 folds): {retraces(shapes)} "
          f"({len(shapes)} compiled steps traced)")


def worker_rows(workers: int) -> None:
    """Which GPU each of `workers` local worker processes is given (as the executor gives it) and sees."""
    import subprocess

    from core.runs.store import RunStore
    from core.search.executors import start_worker
    print()
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(f"sqlite:///{folder}/runs.db", artifacts_dir=Path(folder) / "artifacts")
        shares = local_shares(workers)
        logs = [Path(folder) / f"worker-{s.index}.log" for s in shares]
        started = []
        for share, log in zip(shares, logs):
            with open(log, "wb") as out:
                started.append(start_worker(store, share, [sys.executable, "-c", WORKER_PROBE], out))
        for share, process, log in zip(shares, started, logs):
            try:
                process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                process.kill()
            lines = log.read_text(errors="replace").strip().splitlines()
            seen = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"sees": lines[-1:] or "nothing"}
            print(f"{share.describe()}: CUDA_VISIBLE_DEVICES={seen.get('CUDA_VISIBLE_DEVICES')}, "
                  f"TensorFlow sees {seen['sees']}, decode pool and TF threads {seen.get('cpus')}")


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    from core.models.accelerator import configure_device
    device = configure_device()           # the process's own choice: memory growth, the precision auto picks
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        print(f"GPU: {details.get('device_name', gpus[0].name)}, compute capability "
              f"{details.get('compute_capability')}; {len(gpus)} visible; {device.describe()}")
    else:
        print(f"no GPU seen: rows for the CPU ({os.cpu_count()} cores); {device.describe()}")
    print(f"batch sizes: backbone pass {device.forward_batch}, prediction {device.predict_batch}")
    backbone_rows(args)
    fine_tune_row(args, device.precision, device.xla)
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        print(f"peak GPU memory over the rows above: {peak / 2**30:.2f} GiB")
    else:
        print("peak GPU memory: no GPU seen")
    retrace_row(device.precision)
    steps_row()
    if args.workers:
        worker_rows(args.workers)
    print(f"\ntook {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
