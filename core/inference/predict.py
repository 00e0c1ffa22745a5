"""Classify new images with a trained model: top-k classes per image, bad files reported, not fatal."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.data.images import BadImageError, load_image
from core.inference.model_card import LoadedModel

ImageInput = str | Path | bytes | BinaryIO


@dataclass
class Prediction:
    name: str
    top: list[tuple[str, float]] = field(default_factory=list)   # (class, probability), best first
    image: np.ndarray | None = None                              # the uint8 input the model saw
    error: str = ""                                              # why the file could not be classified

    def to_dict(self) -> dict:
        return {"image": self.name, "top": [{"class": c, "probability": p} for c, p in self.top],
                **({"error": self.error} if self.error else {})}


def predict_images(loaded: LoadedModel, images: list[tuple[str, ImageInput]], top_k: int = 3) -> list[Prediction]:
    """Top-k classes for every (name, source); an unreadable image gets its reason, the rest go on."""
    results: list[Prediction] = []
    batch: list[np.ndarray] = []
    for name, source in images:
        try:
            pixels = load_image(source, loaded.image_size)
        except BadImageError as error:
            results.append(Prediction(name=name, error=error.reason))
            continue
        results.append(Prediction(name=name, image=pixels))
        batch.append(pixels)
    if batch:
        scores = np.asarray(loaded.model.predict_on_batch(np.stack(batch).astype(np.float32)))
        ok = [r for r in results if not r.error]
        k = max(1, min(top_k, len(loaded.classes)))
        for result, row in zip(ok, scores):
            best = np.argsort(row)[::-1][:k]
            result.top = [(loaded.classes[i], float(row[i])) for i in best]
    return results
