"""Classification heads that sit on a backbone's pooled feature vector."""
from __future__ import annotations

import keras

from core.spec.sweep import HEADS, TrialParams


def build_head(features: keras.KerasTensor, num_classes: int, params: TrialParams) -> keras.KerasTensor:
    """Stack the chosen head on `features` and return class probabilities.

    linear: softmax regression, as in feature-extraction baselines.
    dense_dropout: Dense(units, ReLU) + Dropout, the VGG16 / MobileNetV2 reports' head.
    dense_bn_l2: 2 x [Dense(1024, ReLU, L2) + BatchNorm], the ResNet50V2 report's improved head.
    """
    x = features
    if params.head == "dense_dropout":
        x = keras.layers.Dense(params.dense_units, activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(params.dropout, name="head_dropout")(x)
    elif params.head == "dense_bn_l2":
        for i in (1, 2):
            x = keras.layers.Dense(1024, activation="relu", name=f"head_dense_{i}",
                                   kernel_regularizer=keras.regularizers.L2(params.l2))(x)
            x = keras.layers.BatchNormalization(name=f"head_bn_{i}")(x)
    elif params.head != "linear":
        raise ValueError(f"head: {params.head!r} is not one of {', '.join(HEADS)}")
    # float32 output even under mixed precision: softmax in float16 loses the small probabilities.
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
