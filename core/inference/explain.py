"""Grad-CAM and Grad-CAM++ heat maps over tf-keras-vis, for any backbone in the registry and any final model.

The target layer is found, not named per backbone: the last layer with a 4-D output, i.e. the
feature map just before the classifier's pooling. Explainers (and the softmax-free clone of the
model they need) are built once per model and reused, so a warm call costs one forward and one
backward pass per member.

A fold ensemble (`core.training.ensembles`) and flip TTA wrap whole classifiers as nested models: the
last 4-D layer of the wrapper is the frozen layer below the folds (or, for TTA, the mirrored image
itself), and its output is an average of softmaxes that tf-keras-vis cannot make linear. Maps taken there
hugged corners and edges. So a wrapper is split into its members (`members`): each fold's own trained
top from its own last conv layer, each TTA branch on its own (mirrored) image, mapped back; the map
shown is their mean. `deletion_test` checks a map is faithful: hiding its hottest cells must hurt the
class score more than hiding as many random ones.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

METHODS = ("gradcam", "gradcam++")
TTA_LAYER, ENSEMBLE_LAYER = "tta_flip", "fold_average"   # the layers `core.training.ensembles` names
DELETION_GRID = 8             # the deletion test hides cells of a grid this many cells wide
DELETION_DRAWS = 8            # random draws the hottest cells are compared with

_explainers: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def target_layer(model: Any) -> Any:
    """The last layer whose output is a 4-D feature map (batch, height, width, channels)."""
    for layer in reversed(model.layers):
        output = getattr(layer, "output", None)
        if output is not None and len(output.shape) == 4 and type(layer).__name__ != "InputLayer":
            return layer
    raise ValueError(f"model {model.name!r} has no layer with a 4-D (convolutional) output to explain")


@dataclass(frozen=True)
class Member:
    """One classifier inside a final model: `model` maps its input to class scores with its own conv
    layers; `below` turns the image into that input (the shared frozen part), None when it reads the image;
    `mirrored`: it sees the mirror image (flip TTA)."""

    model: Any
    below: Any | None = None
    mirrored: bool = False


def members(model: Any) -> list[Member]:
    """The classifiers whose maps make `model`'s: itself, or a flip TTA's two branches, or a fold ensemble's folds."""
    import keras
    names = {layer.name for layer in model.layers}
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if TTA_LAYER in names and len(nested) == 1:
        inner = members(nested[0])
        return inner + [replace(member, mirrored=not member.mirrored) for member in inner]
    if ENSEMBLE_LAYER in names and nested:
        source = nested[0]._inbound_nodes[0].input_tensors[0]    # the shared cut every fold top reads
        reads_image = isinstance(source._keras_history.operation, keras.layers.InputLayer)
        below = None if reads_image else keras.Model(model.input, source, name="shared_below_folds")
        return [Member(top, below) for top in nested]
    return [Member(model)]


def _members(model: Any) -> list[Member]:
    with _lock:
        per_model = _explainers.setdefault(model, {})
        if "members" not in per_model:
            per_model["members"] = members(model)
        return per_model["members"]


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

    image: uint8 RGB (H, W, 3) already at the model's input size; model: a classifier ending in a Dense
    layer (softmax or not), or a fold ensemble / flip TTA of such (the mean of its members' maps, scaled to 0..1).
    """
    expected = tuple(model.input_shape[1:3])
    if image.ndim != 3 or image.shape[:2] != expected or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}; the model takes {expected + (3,)} RGB")
    if method not in METHODS:
        raise ValueError(f"unknown Grad-CAM method {method!r}; choose one of {', '.join(METHODS)}")
    maps = []
    for member in _members(model):
        seen = (image[:, ::-1] if member.mirrored else image)[None].astype(np.float32)
        if member.below is not None:
            seen = np.asarray(member.below(seen, training=False), dtype=np.float32)
        cam = _resized(_member_map(member.model, seen, class_index, method), image.shape[:2])
        maps.append(cam[:, ::-1] if member.mirrored else cam)
    mean = np.mean(maps, axis=0)
    return np.clip(mean / mean.max() if mean.max() > 0 else mean, 0.0, 1.0).astype(np.float32)   # 0..1 as each map


def _member_map(model: Any, seen: np.ndarray, class_index: int, method: str) -> np.ndarray:
    """tf-keras-vis's map of one flat classifier from its own last conv layer, at its input's spatial size."""
    from tf_keras_vis.utils.scores import CategoricalScore
    explainer = _explainer(model, method)
    layer = explainer.model.get_layer(target_layer(model).name)
    cam = explainer(CategoricalScore([class_index]), seen, penultimate_layer=layer, seek_penultimate_conv_layer=False)
    return np.clip(np.nan_to_num(np.asarray(cam[0], dtype=np.float32)), 0.0, 1.0)


def _resized(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The map stretched (bilinear) over an image of `shape` (H, W)."""
    from PIL import Image
    if heatmap.shape == tuple(shape):
        return heatmap
    resized = Image.fromarray(heatmap.astype(np.float32)).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


@dataclass(frozen=True)
class Deletion:
    """How much the class score fell when the map's hottest cells were hidden, and when as many random ones were."""

    hot_drop: float
    random_drop: float

    @property
    def faithful(self) -> bool:
        return self.hot_drop > self.random_drop


def deletion_test(model: Any, image: np.ndarray, class_index: int, heatmap: np.ndarray, fraction: float = 0.15,
                  seed: int = 0) -> Deletion:
    """Hide the hottest `fraction` of the image (whole cells of a grid, filled with the image's mean colour)
    and the same number of random cells (mean over a few draws): a faithful map's cells cost the class more."""
    height, width = image.shape[:2]
    rows, cols = np.arange(height) * DELETION_GRID // height, np.arange(width) * DELETION_GRID // width
    cell_of = rows[:, None] * DELETION_GRID + cols[None, :]
    heat = _resized(np.asarray(heatmap, dtype=np.float32), (height, width))
    cell_heat = np.bincount(cell_of.ravel(), heat.ravel()) / np.bincount(cell_of.ravel())
    count = max(1, round(fraction * DELETION_GRID ** 2))
    rng = np.random.default_rng(seed)
    hidden = [np.argsort(-cell_heat, kind="stable")[:count]]
    hidden += [rng.choice(DELETION_GRID ** 2, count, replace=False) for _ in range(DELETION_DRAWS)]
    fill = image.reshape(-1, 3).mean(axis=0)
    batch = np.repeat(image[None].astype(np.float32), len(hidden) + 1, axis=0)
    for i, cells in enumerate(hidden, start=1):
        batch[i][np.isin(cell_of, cells)] = fill
    scores = np.asarray(model.predict_on_batch(batch))[:, class_index]
    drops = scores[0] - scores[1:]
    return Deletion(hot_drop=float(drops[0]), random_drop=float(np.mean(drops[1:])))


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
