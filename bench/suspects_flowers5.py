"""Suspect labels of a real dataset: a fast frozen EfficientNet-Lite0 sweep (3 folds), then cleanlab's
ranking of its out-of-fold scores, the top 30 printed and drawn as a contact sheet to look at.

The sweep is run once and reused by name (a finished sweep is not run again; an unfinished one resumes).

    .venv/bin/python bench/suspects_flowers5.py ../shared/datasets/flowers5
    .venv/bin/python bench/suspects_flowers5.py DATASET --sheet /tmp/sheet.png --trials 2 --storage URL
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from core.data.images import open_rgb  # noqa: E402
from core.quality.cli_suspects import suspects_table  # noqa: E402
from core.quality.suspects import Suspect, rank_suspects  # noqa: E402
from core.runs.store import RunStore  # noqa: E402
from core.search.worker import Watch, run_worker  # noqa: E402
from core.spec.sweep import SweepSpec  # noqa: E402

ROWS, COLS, THUMB, CAPTION = 5, 6, 180, 40


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path)
    p.add_argument("--name", default="suspects-flowers5", help="sweep name, reused when it exists")
    p.add_argument("--storage", help="run store URL (default: the project's)")
    p.add_argument("--trials", type=int, default=1, help="average the best K trials' out-of-fold scores")
    p.add_argument("--sheet", type=Path, default=Path("/tmp/suspects_flowers5.png"))
    return p.parse_args()


def fast_spec(name: str, dataset: Path) -> SweepSpec:
    """Frozen Lite0 (ImageNet weights, offline), a linear head, two learning rates, 3 folds."""
    return SweepSpec.from_dict({
        "name": name, "folds": 3, "data": {"dataset": str(dataset.resolve())},
        "params": {"backbone": "efficientnet_lite0", "weights": "imagenet", "trainable_layers": 0,
                   "epochs": 20, "early_stopping": 3},
        "search": {"method": "grid", "space": {"learning_rate": [0.001, 0.003]}}})


def contact_sheet(suspects: list[Suspect], out: Path) -> None:
    """Thumbnails in a ROWS x COLS grid, each captioned `#rank given -> suggested` and its scores."""
    sheet = Image.new("RGB", (COLS * THUMB, ROWS * (THUMB + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for i, s in enumerate(suspects[:ROWS * COLS]):
        x, y = (i % COLS) * THUMB, (i // COLS) * (THUMB + CAPTION)
        thumb = open_rgb(s.path, at_least=THUMB)
        thumb.thumbnail((THUMB - 4, THUMB - 4))
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        outlier = "" if s.outlier_score is None else f"  out {s.outlier_score:.2f}"
        draw.text((x + 4, y + THUMB), f"#{s.rank} {s.given} -> {s.suggested}", fill="black", font=font)
        draw.text((x + 4, y + THUMB + 18), f"q {s.label_quality:.3f}{outlier}", fill="dimgray", font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main() -> None:
    args = parse_args()
    store = RunStore(args.storage)
    spec = fast_spec(args.name, args.dataset)
    started = time.perf_counter()
    store.create_sweep(spec)
    ran = run_worker(store, args.name, Watch(say=lambda line: print(f"  {line}", file=sys.stderr)))
    print(f"sweep {args.name}: {ran} trial(s) run in {(time.perf_counter() - started) / 60:.1f} min",
          file=sys.stderr)
    ranked = rank_suspects(store, args.name, top_trials=args.trials, with_outliers=True)
    top = ranked[:ROWS * COLS]
    print(suspects_table(top, outliers=True).to_string(index=False))
    print(f"\n{sum(s.flagged for s in ranked)} of {len(ranked)} training images flagged by cleanlab")
    print("\nmost unusual by outlier score (near 0 = unlike the rest):")
    print(suspects_table(sorted(ranked, key=lambda s: s.outlier_score)[:10], outliers=True).to_string(index=False))
    contact_sheet(top, args.sheet)
    print(f"\ncontact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
