"""Where a sweep's workers run, as the CLI, the Sweep page and a relaunched driver name it.

Kept apart from `executors.py` (which runs them) so the lifecycle can pass it to a detached driver
without importing the driver, and so nothing here needs Ray. Also each local worker's share of the machine
(`worker_shares`): its GPU and its CPU threads.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.data.images import CPUS_VARIABLE, usable_cpus

GPUS_VARIABLE = "TRANSFERLAB_GPUS"
"""The GPUs local workers take turns on (`0,1`), declared by whoever knows the machine; empty: none."""

EXECUTORS = ("local", "ray")
"""local: the driver's own process (1 worker) or worker processes on this machine; ray: one Ray task per
worker, anywhere in a Ray cluster."""


@dataclass(frozen=True)
class Executor:
    """`kind` (one of EXECUTORS), how many workers, and for Ray the cluster to join: `ray_address`
    "auto", "ray://host:10001" or "host:6379"; None joins $RAY_ADDRESS when set, else starts a local Ray."""

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor: {self.kind!r} is not one of {', '.join(EXECUTORS)}")
        if self.workers < 1:
            raise ValueError(f"workers: {self.workers} is below 1")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Executor:
        """A driver's recorded executor; {} (a driver recorded before executors were kept) is the default."""
        return cls(**{k: data[k] for k in ("kind", "workers", "ray_address") if k in data})

    def arguments(self) -> list[str]:
        """The same choice as `python -m core resume` options."""
        args = ["--workers", str(self.workers)]
        if self.kind != "local":
            args += ["--executor", self.kind]
        if self.ray_address:
            args += ["--ray-address", self.ray_address]
        return args

    def describe(self) -> str:
        where = f"Ray ({self.ray_address or 'local or $RAY_ADDRESS'})" if self.kind == "ray" else "this machine"
        return f"{self.workers} worker{'s' * (self.workers != 1)} on {where}"


@dataclass(frozen=True)
class WorkerShare:
    """One local worker's part of the machine: its GPU (None: no GPU) and its CPU threads, which size
    TensorFlow's intra/inter-op pools and its decode pool (the worker reads them from TRANSFERLAB_CPUS)."""

    index: int
    gpu: str | None
    cpus: int

    def environment(self) -> dict[str, str]:
        """What the worker process's environment adds: CUDA_VISIBLE_DEVICES makes its GPU the only one
        TensorFlow sees (as GPU:0)."""
        return {CPUS_VARIABLE: str(self.cpus)} | ({"CUDA_VISIBLE_DEVICES": self.gpu} if self.gpu is not None else {})

    def describe(self) -> str:
        device = f"GPU {self.gpu}" if self.gpu is not None else "no GPU"
        return f"worker {self.index}: {device}, {self.cpus} CPU threads"


def worker_shares(workers: int, gpus: Sequence[str], cpus: int) -> list[WorkerShare]:
    """Each of `workers` gets a GPU round robin (two workers share one when workers outnumber GPUs) and
    an equal share of the `cpus`, at least one."""
    per_worker = max(1, cpus // workers)
    return [WorkerShare(i, gpus[i % len(gpus)] if gpus else None, per_worker) for i in range(workers)]


def _device_list(text: str) -> list[str]:
    return [d.strip() for d in text.split(",") if d.strip() and d.strip() != "-1"]


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs this machine's workers may use: TRANSFERLAB_GPUS when declared, else the driver's own
    CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists. Read without TensorFlow, so the driver
    starts no CUDA context before its workers take their devices."""
    for variable in (GPUS_VARIABLE, "CUDA_VISIBLE_DEVICES"):
        if variable in environ:
            return _device_list(environ[variable])
    return detected_gpus()


def detected_gpus() -> list[str]:
    """The indices nvidia-smi lists; none without the tool or a driver."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        done = subprocess.run([tool, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return _device_list(done.stdout.replace("\n", ",")) if done.returncode == 0 else []


def local_shares(workers: int) -> list[WorkerShare]:
    """This machine's shares for `workers` local worker processes."""
    return worker_shares(workers, visible_gpus(), usable_cpus())
