"""Grad-CAM and Grad-CAM++ heat maps over tf-keras-vis, for any backbone in the registry.

The target layer is found, not named per backbone: the last layer with a 4-D output, i.e. the
feature map just before the classifier's pooling. Explainers (and the softmax-free clone of the
model they need) are built once per model and reused, so a warm call costs one forward and one
backward pass.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

METHODS = ("gradcam", "gradcam++")

_explainers: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def target_layer(model: Any) -> Any:
    """The last layer whose output is a 4-D feature map (batch, height, width, channels)."""
    for layer in reversed(model.layers):
        output = getattr(layer, "output", None)
        if output is not None and len(output.shape) == 4 and type(layer).__name__ != "InputLayer":
            return layer
    raise ValueError(f"model {model.name!r} has no layer with a 4-D (convolutional) output to explain")


def _explainer(model: Any, method: str) -> Any:
    """Cached tf-keras-vis explainer. Grad-CAM wants class scores, not softmax probabilities (whose
    gradients vanish for a confident class): tf-keras-vis makes the output linear on its own clone,
    never on the caller's model."""
    if method not in METHODS:
        raise ValueError(f"unknown Grad-CAM method {method!r}; choose one of {', '.join(METHODS)}")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    with _lock:
        per_model = _explainers.setdefault(model, {})
        if method not in per_model:
            explainer_class = Gradcam if method == "gradcam" else GradcamPlusPlus
            per_model[method] = explainer_class(model, model_modifier=ReplaceToLinear(), clone=True)
        return per_model[method]


def gradcam(model: Any, image: np.ndarray, class_index: int, method: str = "gradcam") -> np.ndarray:
    """Heat map (H, W) float32 in 0..1 of where `model` looked to score `class_index` on `image`.

    image: uint8 RGB (H, W, 3) already at the model's input size; model: a flat classifier ending in
    a Dense layer (softmax or not).
    """
    from tf_keras_vis.utils.scores import CategoricalScore
    expected = tuple(model.input_shape[1:3])
    if image.ndim != 3 or image.shape[:2] != expected or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}; the model takes {expected + (3,)} RGB")
    explainer = _explainer(model, method)
    layer = explainer.model.get_layer(target_layer(model).name)
    cam = explainer(CategoricalScore([class_index]), image[None].astype(np.float32),
                    penultimate_layer=layer, seek_penultimate_conv_layer=False)
    return np.clip(np.nan_to_num(np.asarray(cam[0], dtype=np.float32)), 0.0, 1.0)


def jet(values: np.ndarray) -> np.ndarray:
    """Jet-like colours (…, 3) float in 0..1 for values in 0..1: blue -> cyan -> yellow -> red."""
    v = np.clip(values, 0.0, 1.0)[..., None] * 4.0
    centres = np.array([3.0, 2.0, 1.0])  # where red, green, blue peak
    return np.clip(1.5 - np.abs(v - centres), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """uint8 RGB: the heat map in jet colours blended over the image (the map is resized to fit)."""
    from PIL import Image
    if heatmap.shape != image.shape[:2]:
        resized = Image.fromarray(heatmap.astype(np.float32)).resize(
            (image.shape[1], image.shape[0]), Image.Resampling.BILINEAR)
        heatmap = np.asarray(resized)
    blended = (1.0 - alpha) * image[..., :3].astype(np.float32) + alpha * 255.0 * jet(heatmap)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
