"""Where the frozen part of a classifier hands over to the trained part: the tensors that cross (issue 22).

Inside a residual block two tensors cross any position, the branch and the skip, so a cut at one tensor
had to fall back to the block's input and recompute the whole block every epoch. The frontier is every
tensor made below the first trained layer and read at or above it; the activation cache holds them all,
flattened and side by side in one array per image (`Pack`), and the trained part unpacks them (`Unpack`),
so everything that moves arrays of rows (the cache, the tf.data pipeline, predictions) keeps one array.
A frontier is named by its layers joined by "+" (one name when one tensor crosses, as at a block's output).
"""
from __future__ import annotations

import math

import keras

JOIN = "+"


def frontier(model: keras.Model, first: int) -> str:
    """The layers below index `first` of `model.layers` whose outputs a layer at or above it reads."""
    index = {layer.name: i for i, layer in enumerate(model.layers)}
    names: list[str] = []
    for layer in model.layers[first:]:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                source = tensor._keras_history.operation.name
                if index.get(source, first) < first and source not in names:
                    names.append(source)
    return JOIN.join(sorted(names, key=index.__getitem__))


def tensors(model: keras.Model, reads: str) -> list:
    """The output tensors of the layers `reads` names."""
    return [model.get_layer(name).output for name in reads.split(JOIN)]


class Pack(keras.layers.Layer):
    """Tensors of any shapes -> one (batch, total) tensor: each flattened, side by side."""

    def call(self, inputs: list) -> keras.KerasTensor:
        return keras.ops.concatenate([keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)) for x in inputs], axis=-1)

    def compute_output_shape(self, shapes: list) -> tuple:
        return shapes[0][0], sum(math.prod(shape[1:]) for shape in shapes)


class Unpack(keras.layers.Layer):
    """`Pack`'s inverse: (batch, total) -> the tensors of `shapes` (each without its batch axis)."""

    def __init__(self, shapes: list[tuple[int, ...]], **kwargs):
        super().__init__(**kwargs)
        self.shapes = [tuple(shape) for shape in shapes]

    def call(self, packed: keras.KerasTensor) -> list:
        parts, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            parts.append(keras.ops.reshape(packed[:, start:start + size], (-1, *shape)))
            start += size
        return parts

    def compute_output_shape(self, shape: tuple) -> list:
        return [(shape[0], *part) for part in self.shapes]

    def get_config(self) -> dict:
        return super().get_config() | {"shapes": self.shapes}


def from_reads(model: keras.Model, reads: str, outputs, name: str) -> keras.Model:
    """A model from what `reads` names (one layer's output, or a packed frontier) to `outputs`, sharing
    `model`'s layers."""
    inputs = tensors(model, reads)
    if len(inputs) == 1:
        return keras.Model(inputs[0], outputs, name=name)
    inner = keras.Model(inputs, outputs, name=f"{name}_unpacked")
    packed = keras.Input((sum(math.prod(t.shape[1:]) for t in inputs),), name=f"{name}_packed")
    return keras.Model(packed, inner(Unpack([tuple(t.shape[1:]) for t in inputs])(packed)), name=name)


def to_reads(model: keras.Model, start, reads: str, name: str) -> keras.Model:
    """A model from `start` (the input, or a lower layer's output) to what `reads` names, packed."""
    ends = tensors(model, reads)
    return keras.Model(start, ends[0] if len(ends) == 1 else Pack(name=f"{name}_pack")(ends), name=name)
