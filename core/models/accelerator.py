"""Use a GPU well when there is one (mixed precision, XLA); change nothing on a CPU.

TRANSFERLAB_MIXED_PRECISION and TRANSFERLAB_XLA ("0"/"1") override the default, which is
on when TensorFlow sees a GPU and off otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class DeviceSetup:
    gpus: int
    mixed_precision: bool
    xla: bool

    def describe(self) -> str:
        where = f"{self.gpus} GPU(s)" if self.gpus else "CPU"
        return f"{where}; mixed precision {'on' if self.mixed_precision else 'off'}; XLA {'on' if self.xla else 'off'}"


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=1)
def configure_device() -> DeviceSetup:
    """Set the Keras dtype policy once per process and say what was chosen."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    mixed = _flag("TRANSFERLAB_MIXED_PRECISION", bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    return DeviceSetup(gpus=len(gpus), mixed_precision=mixed, xla=_flag("TRANSFERLAB_XLA", bool(gpus)))
