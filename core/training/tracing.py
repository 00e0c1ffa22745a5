"""The input shapes of every trace of each model's compiled train and predict steps (bench/device.py and
the tests count retraces with it: a step traced a second time retraced, under XLA recompiled, whether for a
new shape or for the same one, as TensorFlow does when a first trace made variables).

Keras runs a compiled step's Python body only while TensorFlow traces it, so wrapping that body sees
every trace and nothing else.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

STEPS = ("train_step", "predict_step")
Shapes = dict[tuple[str, int], list[tuple]]      # (step, id of the model) -> each trace's input shapes


@contextmanager
def traced_shapes() -> Iterator[Shapes]:
    """While inside, record the input shapes of each trace of each model's steps (TensorFlow backend)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    shapes: Shapes = defaultdict(list)
    originals = {step: getattr(TensorFlowTrainer, step) for step in STEPS}

    def recording(step: str):
        def traced(self, data):
            shapes[(step, id(self))].append(tuple(tuple(t.shape) for t in tf.nest.flatten(data)))
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
    """Traces beyond one per model and step."""
    return sum(len(seen) - 1 for seen in shapes.values())
