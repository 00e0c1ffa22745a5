"""Use the hardware well (precision by hardware, XLA on a GPU); change nothing on a CPU until measured.

TRANSFERLAB_PRECISION (auto, float32, mixed_float16, mixed_bfloat16) names the Keras dtype policy;
auto picks it from the hardware (`auto_precision`). The older TRANSFERLAB_MIXED_PRECISION ("0"/"1")
still works when TRANSFERLAB_PRECISION is not set: 1 is mixed_float16, 0 float32. TRANSFERLAB_XLA
("0"/"1") overrides XLA's default, on with a GPU and off without.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
PRECISION_VARIABLE = "TRANSFERLAB_PRECISION"
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPU_BF16_MEASURED = False
"""bf16 on a CPU changes the numbers a sweep reports. The issue (22) asks bench/quality.py to show the
recommended preset at bf16 within one point of float32 on flowers5 before auto picks it on a CPU; that
measurement has not been made, so auto stays float32 on every CPU until it is and this is set True."""


@dataclass(frozen=True)
class Hardware:
    """What the precision depends on: the compute capability of the GPU this process uses (None: no GPU)
    and the CPU's feature flags (as /proc/cpuinfo spells them)."""

    gpu_capability: tuple[int, int] | None
    cpu_flags: frozenset[str] = frozenset()

    def describe(self) -> str:
        if self.gpu_capability is not None:
            return f"GPU (compute capability {self.gpu_capability[0]}.{self.gpu_capability[1]})"
        return f"CPU{' with bf16' if self.cpu_flags & CPU_BF16_FLAGS else ''}"


def auto_precision(hardware: Hardware, cpu_bf16_measured: bool = CPU_BF16_MEASURED) -> str:
    """bf16 on GPUs that have it (compute capability 8.0 and up: no loss scaling), float16 on older GPUs;
    on a CPU with AVX-512 BF16 or AMX, bf16 once measured (`CPU_BF16_MEASURED`); float32 elsewhere."""
    if hardware.gpu_capability is not None:
        return "mixed_bfloat16" if hardware.gpu_capability >= (8, 0) else "mixed_float16"
    if cpu_bf16_measured and hardware.cpu_flags & CPU_BF16_FLAGS:
        return "mixed_bfloat16"
    return "float32"


def chosen_precision(hardware: Hardware, environ: dict[str, str] | None = None) -> str:
    """The policy the settings ask for: TRANSFERLAB_PRECISION (auto: `auto_precision`), else the older
    TRANSFERLAB_MIXED_PRECISION, else auto."""
    environ = dict(os.environ) if environ is None else environ
    asked = environ.get(PRECISION_VARIABLE, "auto").strip().lower() or "auto"
    if asked == "auto" and "TRANSFERLAB_MIXED_PRECISION" in environ:
        return "mixed_float16" if _flag("TRANSFERLAB_MIXED_PRECISION", False, environ) else "float32"
    if asked == "auto":
        return auto_precision(hardware)
    if asked not in PRECISIONS:
        raise ValueError(f"{PRECISION_VARIABLE}={asked!r} is not one of auto, {', '.join(PRECISIONS)}")
    return asked


CPU_BATCHES = (32, 64)
GPU_BATCHES = (256, 256)
"""(backbone pass, prediction) batch sizes: a GPU idles at 32 (bench/device.py measures 32/256/512);
a CPU gains nothing from more than it has today and pays in memory."""


def batch_sizes(gpus: int) -> tuple[int, int]:
    """The (backbone pass, prediction) batch sizes with `gpus` GPUs in sight."""
    return GPU_BATCHES if gpus else CPU_BATCHES


@lru_cache(maxsize=1)
def gpu_count() -> int:
    """The GPUs TensorFlow sees, without setting any policy (predicting code sizes its batches by it)."""
    import tensorflow as tf
    return len(tf.config.list_physical_devices("GPU"))


GPU_STEPS_PER_EXECUTION = 16
"""Train steps per call into the compiled function on a GPU: a trial's top on cached activations is small,
so one step's launch overhead rivals its compute; a CPU runs one (its steps are long enough)."""


@dataclass(frozen=True)
class DeviceSetup:
    gpus: int
    precision: str
    xla: bool
    steps_per_execution: int = 1

    @property
    def mixed_precision(self) -> bool:
        return self.precision != "float32"

    @property
    def forward_batch(self) -> int:
        """The batch of the backbone pass that fills the activation cache."""
        return batch_sizes(self.gpus)[0]

    @property
    def predict_batch(self) -> int:
        """The batch of a trial's predictions (validation, test, out-of-fold scores)."""
        return batch_sizes(self.gpus)[1]

    def describe(self) -> str:
        where = f"{self.gpus} GPU(s)" if self.gpus else "CPU"
        return (f"{where}; precision {self.precision}; XLA {'on' if self.xla else 'off'}; "
                f"{self.steps_per_execution} train step(s) per execution")


def _flag(name: str, default: bool, environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags; none where /proc/cpuinfo does not exist."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((row for row in text.splitlines() if row.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def this_hardware(gpus: list) -> Hardware:
    """This process's hardware, from TensorFlow's visible GPUs (the first one's capability; a GPU that
    reports none is taken as an older one)."""
    if not gpus:
        return Hardware(None, cpu_flags())
    import tensorflow as tf
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return Hardware(tuple(capability), cpu_flags())


@lru_cache(maxsize=1)
def configure_device() -> DeviceSetup:
    """Set the Keras dtype policy once per process and say what was chosen."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    precision = chosen_precision(this_hardware(gpus))
    keras.mixed_precision.set_global_policy(precision)
    steps = os.environ.get("TRANSFERLAB_STEPS_PER_EXECUTION", "").strip()
    return DeviceSetup(gpus=len(gpus), precision=precision, xla=_flag("TRANSFERLAB_XLA", bool(gpus)),
                       steps_per_execution=max(1, int(steps)) if steps.isdigit() else
                       GPU_STEPS_PER_EXECUTION if gpus else 1)
