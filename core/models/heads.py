"""Classification heads that sit on a backbone's pooled feature vector."""
from __future__ import annotations

import keras

from core.spec.sweep import HEADS, TrialParams


def build_head(features: keras.KerasTensor, num_classes: int, params: TrialParams) -> keras.KerasTensor:
    """Stack the chosen head on `features` and return class probabilities.

    linear: softmax regression, as in feature-extraction baselines.
    dense_dropout: per width in `dense_units`, Dense(width, ReLU) + Dropout (one rate for every layer,
    or one per layer): [512] is the MobileNetV2 report's head, [512, 128] with [0.5, 0.2] the VGG16 one's.
    dense_bn_l2: 2 x [Dense(1024, ReLU, L2) + BatchNorm], the ResNet50V2 report's improved head.
    """
    x = features
    if params.head == "dense_bn_l2":
        for i in (1, 2):
            x = keras.layers.Dense(1024, activation="relu", name=f"head_dense_{i}",
                                   kernel_regularizer=keras.regularizers.L2(params.l2))(x)
            x = keras.layers.BatchNormalization(name=f"head_bn_{i}")(x)
    for i, (units, rate) in enumerate(_dense_dropout_layers(params)):
        suffix = f"_{i + 1}" if i else ""
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense{suffix}")(x)
        x = keras.layers.Dropout(rate, name=f"head_dropout{suffix}")(x)
    # float32 output even under mixed precision: softmax in float16 loses the small probabilities.
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def _dense_dropout_layers(params: TrialParams) -> list[tuple[int, float]]:
    """(width, dropout) of each Dense + Dropout hidden layer: the dense head's, none for the others."""
    if params.head not in HEADS:
        raise ValueError(f"head: {params.head!r} is not one of {', '.join(HEADS)}")
    if params.head != "dense_dropout":
        return []
    rates = params.dropout * len(params.dense_units) if len(params.dropout) == 1 else params.dropout
    return list(zip(params.dense_units, rates, strict=True))
