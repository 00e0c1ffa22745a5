"""This machine's speed on a sweep's data, measured in a process of its own, for the Sweep page's time budget.

The page plans "the best model in N minutes" (`core.search.budget`) from the split's sizes and Lite0's
images/s; measuring builds Lite0, and the server never loads TensorFlow, so the page runs
`python -m core.search.measure` (the spec's YAML on stdin; the sizes and the speed as JSON on stdout).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from core.search.budget import Data, measure
from core.spec.sweep import SweepSpec

ROOT = Path(__file__).resolve().parents[2]      # where `python -m core...` finds the package
TIMEOUT_S = 900          # decoding a large dataset at 224 px the first time takes minutes on a small machine


class MeasureError(RuntimeError):
    """The measuring process failed; its last line says why."""


def measure_elsewhere(spec: SweepSpec) -> tuple[Data, float]:
    """`budget.measure(spec)` in a child process: (the split's sizes, Lite0's images/s)."""
    try:
        done = subprocess.run([sys.executable, "-m", "core.search.measure"], input=spec.to_yaml(), text=True,
                              capture_output=True, timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise MeasureError(f"measuring this machine's speed took over {TIMEOUT_S // 60} minutes") from None
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise MeasureError(f"measuring this machine's speed failed: {lines[-1] if lines else done.returncode}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Data(**found["data"]), float(found["images_per_s"])


def main() -> None:
    sizes, speed = measure(SweepSpec.from_yaml(sys.stdin.read()))
    print(json.dumps({"data": dataclasses.asdict(sizes), "images_per_s": speed}))


if __name__ == "__main__":
    main()
