"""How long each export takes and how closely it matches the model: EfficientNet-Lite0 final model.

Builds the product's final model (EfficientNet-Lite0 with its shipped ImageNet weights, 224 px, a linear
5-class head, untrained: speed and parity do not depend on the head's values) unless --model names a
trained .keras, then exports it in every format through `core.inference.exports.export`, which reloads
each export in its own runtime and checks it on --images photos (flowers5's, when present).

    .venv/bin/python bench/export_speed.py [--model runs/artifacts/NAME/best.keras] [--images 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FLOWERS5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers5"


def lite0_final_model(folder: Path) -> Path:
    from core.inference.model_card import save_model
    from core.models.classifier import build_classifier
    from core.spec.sweep import TrialParams
    classes = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    model = build_classifier(TrialParams(backbone="efficientnet_lite0", weights="imagenet", image_size=224,
                                         head="linear"), len(classes)).model
    return save_model(model, folder / "best.keras", classes=classes, image_size=224)


def photos(count: int) -> list[Path]:
    """`count` photos spread over flowers5's classes, or none (the check then uses seeded noise)."""
    if not FLOWERS5.is_dir():
        return []
    folders = sorted(p for p in FLOWERS5.iterdir() if p.is_dir())
    files = [sorted(f.iterdir()) for f in folders]
    return [files[i % len(files)][i // len(files)] for i in range(count)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained .keras with its card (default: Lite0)")
    parser.add_argument("--images", type=int, default=8, help="photos the parity check runs on")
    args = parser.parse_args(argv)

    from core.inference.export_files import FORMATS, LABELS
    from core.inference.exports import ExportCheckError, export
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = args.model or lite0_final_model(Path(tmp))
        print(f"model {model} ready in {time.perf_counter() - start:.1f} s")
        images = photos(args.images)
        print(f"parity images: {len(images)} flowers5 photos" if images else "parity images: seeded noise")
        print("\n| format | export s | check s | max abs diff | tolerance | size MB |")
        print("|---|---|---|---|---|---|")
        for fmt in FORMATS:
            try:
                result = export(model, fmt, Path(tmp) / fmt, images=images)
            except ExportCheckError as error:
                print(f"| {LABELS[fmt]} | failed: {error} |||||")
                continue
            path = result.path
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
                else path.stat().st_size
            print(f"| {LABELS[fmt]} | {result.export_seconds:.1f} | {result.check_seconds:.1f} | "
                  f"{result.parity.max_abs_diff:.2e} | {result.parity.tolerance:.0e} | {size / 1e6:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
