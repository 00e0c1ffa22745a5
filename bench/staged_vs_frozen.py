"""Does staged fine-tuning beat frozen training at equal total epochs? Two refits on one split and seed.

1. frozen: the head alone on the frozen backbone for E1 + E2 epochs;
2. staged: the head alone for E1 epochs, then the top N backbone layers with it for E2 epochs at the
   learning rate x stage2_lr_factor (`stage1_epochs`, `trainable_layers`, `stage2_lr_factor`).

Both train on the whole train part (no CV: the comparison is the fit, not the search), share one
cache folder (the second reads the first's decoded images), and are tested on the held-out split.
Prints test accuracy, macro F1 and wall time side by side.

    .venv/bin/python bench/staged_vs_frozen.py ../shared/datasets/flowers5
    .venv/bin/python bench/staged_vs_frozen.py DATASET --stage1-epochs 3 --stage2-epochs 3 --max-per-class 100
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.runs.evaluation import Evaluation  # noqa: E402
from core.spec.sweep import SweepSpec  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path)
    p.add_argument("--stage1-epochs", type=int, default=4)
    p.add_argument("--stage2-epochs", type=int, default=4)
    p.add_argument("--trainable-layers", type=int, default=40)
    p.add_argument("--stage2-lr-factor", type=float, default=0.1)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-per-class", type=int, default=0, help="images per class (0 = all)")
    return p.parse_args()


def specs(args: argparse.Namespace) -> dict[str, SweepSpec]:
    common = {"backbone": "efficientnet_lite0", "head": "dense_dropout", "dense_units": 256, "dropout": 0.3,
              "optimizer": "adam", "learning_rate": args.learning_rate, "early_stopping": 0, "reduce_lr": 0}
    data = {"dataset": str(args.dataset.resolve()), "test_fraction": args.test_fraction, "seed": args.seed,
            "max_per_class": args.max_per_class}
    total = args.stage1_epochs + args.stage2_epochs
    params = {
        "frozen": common | {"trainable_layers": 0, "epochs": total},
        "staged": common | {"trainable_layers": args.trainable_layers, "stage1_epochs": args.stage1_epochs,
                            "epochs": args.stage2_epochs, "stage2_lr_factor": args.stage2_lr_factor},
    }
    return {name: SweepSpec.from_dict({"name": name, "data": data, "params": p})
            for name, p in params.items()}


def refit(spec: SweepSpec) -> Evaluation:
    """The configuration trained on the whole train part for its planned epochs, tested on the test split."""
    from core.training.plan import SweepData
    from core.training.schedules import planned_epochs
    data = SweepData(spec, say=lambda line: print(f"  {line}", file=sys.stderr))
    params = spec.params
    _, test, _ = data.runner(params).refit(params, planned_epochs(params), base_cut=data.base_cut(params))
    return test


def main() -> None:
    args = parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:          # cold caches, shared by both runs
        os.environ.update({"TRANSFERLAB_CACHE": str(Path(home) / "cache"), "TRANSFERLAB_HOME": home})
        for name, spec in specs(args).items():
            started = time.perf_counter()
            evaluation = refit(spec)
            seconds = time.perf_counter() - started
            rows.append((name, evaluation.accuracy(), evaluation.summary()["f1_macro"], seconds,
                         len(evaluation.y_true)))
            print(f"{name}: test accuracy {rows[-1][1]:.4f}, macro F1 {rows[-1][2]:.4f}, "
                  f"{seconds / 60:.1f} min", file=sys.stderr)
    print(f"\n{args.dataset.name}: seed {args.seed}, test fraction {args.test_fraction}, "
          f"{args.stage1_epochs} + {args.stage2_epochs} epochs, staged: top {args.trainable_layers} layers "
          f"at x{args.stage2_lr_factor}")
    print(f"{'run':<10}{'test acc':>10}{'macro F1':>10}{'minutes':>10}{'test n':>8}")
    for name, accuracy, f1, seconds, n in rows:
        print(f"{name:<10}{accuracy:>10.4f}{f1:>10.4f}{seconds / 60:>10.1f}{n:>8}")


if __name__ == "__main__":
    main()
