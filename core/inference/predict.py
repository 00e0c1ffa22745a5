"""Classify new images with a trained model: top-k classes per image, bad files reported, not fatal.

Probabilities are the model's own scaled by the temperature it carries (calibrated); an image its open-set
detector refuses keeps its ranking, with `refusal` saying why no class is claimed.
"""
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
    unknown_score: float | None = None                           # the open-set detector's score (None: none)
    refusal: str = ""                                            # "looks like none of the classes (...)" or ""

    def to_dict(self) -> dict:
        return {"image": self.name, "top": [{"class": c, "probability": p} for c, p in self.top],
                **({"unknown_score": self.unknown_score, "none_of_the_classes": bool(self.refusal)}
                   if self.unknown_score is not None else {}),
                **({"refusal": self.refusal} if self.refusal else {}),
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
        from core.quality.unknowns import refusal_line
        pixels = np.stack(batch)
        scores = loaded.calibrated(np.asarray(loaded.model.predict_on_batch(pixels.astype(np.float32))))
        unknown = loaded.unknowns.scores(pixels) if loaded.unknowns else [None] * len(batch)
        ok = [r for r in results if not r.error]
        k = max(1, min(top_k, len(loaded.classes)))
        for result, row, score in zip(ok, scores, unknown):
            best = np.argsort(row)[::-1][:k]
            result.top = [(loaded.classes[i], float(row[i])) for i in best]
            if loaded.unknowns and score is not None:
                result.unknown_score = float(score)
                if score > loaded.unknowns.detector.threshold:
                    result.refusal = refusal_line(loaded.unknowns.detector, float(score))
    return results


def honesty(loaded: LoadedModel) -> str:
    """What the probabilities shown mean, and whether the model can say an image is none of its classes."""
    if loaded.temperature is None:
        calibration = "Probabilities as the model gives them (it carries no temperature to calibrate them)."
    else:
        calibration = (f"Probabilities calibrated by temperature scaling (T = {loaded.temperature:.2f}, fitted on the "
                       "sweep's out-of-fold scores, so that how sure it says it is matches how often it was "
                       "right there).")
    if loaded.unknowns is None:
        return f"{calibration} No open-set detector, so no image is called none of the classes: {loaded.no_unknowns}"
    detector = loaded.unknowns.detector
    return (f"{calibration} Open-set detector: {detector.method} on the frozen backbone's features, threshold "
            f"{detector.threshold:.3f} (accepts {detector.accept:.0%} of the training images); an image scoring "
            "above it is called none of the classes.")
