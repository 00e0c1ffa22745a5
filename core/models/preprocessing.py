"""Serializable input-preprocessing layers, so exported models take raw RGB pixels (0..255).

Rescaling covers the "x * scale + offset" backbones; what it cannot do lives here.
Saved models that contain these layers need `import core.models.preprocessing` before loading.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops

# ImageNet channel means in BGR order, as keras.applications' "caffe" mode subtracts them.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="transferlab")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet mean: what the caffe-trained ResNet50/101 and VGG16 weights expect."""

    def call(self, inputs: Any) -> Any:
        mean = ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=inputs.dtype)
        return ops.flip(inputs, axis=-1) - mean

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape
