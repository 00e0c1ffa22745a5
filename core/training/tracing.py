"""Which input shapes each model's compiled train and predict steps were traced for (bench/device.py and
the tests count retraces with it: a step traced for a second shape retraced, under XLA recompiled).

Keras runs a compiled step's Python body only while TensorFlow traces it, so wrapping that body sees
every trace and nothing else.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

STEPS = ("train_step", "predict_step")
Shapes = dict[tuple[str, int], set[tuple]]       # (step, id of the model) -> the input shapes it was traced for


@contextmanager
def traced_shapes() -> Iterator[Shapes]:
    """While inside, record each model's traced step input shapes (TensorFlow backend)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    shapes: Shapes = defaultdict(set)
    originals = {step: getattr(TensorFlowTrainer, step) for step in STEPS}

    def recording(step: str):
        def traced(self, data):
            shapes[(step, id(self))].add(tuple(tuple(t.shape) for t in tf.nest.flatten(data)))
            return originals[step](self, data)
        return traced
    try:
        for step in STEPS:
            setattr(TensorFlowTrainer, step, recording(step))
        yield shapes
    finally:
        for step, original in originals.items():
            setattr(TensorFlowTrainer, step, original)


def retraces(shapes: Shapes) -> int:
    """Traces beyond one shape per model and step."""
    return sum(len(seen) - 1 for seen in shapes.values())
