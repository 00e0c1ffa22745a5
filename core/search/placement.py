"""Where a sweep's workers run, as the CLI, the Sweep page and a relaunched driver name it.

Kept apart from `executors.py` (which runs them) so the lifecycle can pass it to a detached driver
without importing the driver, and so nothing here needs Ray.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

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
