"""What the suites that run the CLI in other processes share: `python -m core` run to its end, a spec file of a
small sweep, a sweep two worker processes share, the processes running now, and waiting for a condition."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from core.runs.store import RunStore

REPO = Path(__file__).resolve().parents[1]
FAST_HEARTBEAT = {"TRANSFERLAB_HEARTBEAT_S": "1", "TRANSFERLAB_GRACE_S": "3"}   # a killed worker's trial failed in seconds


def cli(*args: str, env: dict | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True,
                            env=env or os.environ.copy(), timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def write_spec(path: Path, name: str, dataset: Path, space: dict, **params) -> Path:
    spec = {"name": name, "folds": 2,
            "data": {"dataset": str(dataset), "test_fraction": 0.25, "seed": 1},
            "params": {"image_size": 32, "epochs": 4, "batch_size": 8, "learning_rate": 0.01,
                       "early_stopping": 0, "reduce_lr": 0, **params},
            "search": {"method": "grid", "space": space}}
    path.write_text(yaml.safe_dump(spec))
    return path


def two_worker_sweep(storage: str, name: str, dataset: Path, folder: Path) -> RunStore:
    """Three configurations shared by two worker processes: each done once, then refit once."""
    spec = write_spec(folder / "spec.yaml", name, dataset, {"learning_rate": [0.003, 0.01, 0.03]}, epochs=2)
    cli("sweep", str(spec), "--storage", storage, "--workers", "2")
    store = RunStore(storage)
    trials = store.trials(name)
    assert sorted(t.params["learning_rate"] for t in trials if t.state.name == "COMPLETE") == [0.003, 0.01, 0.03]
    logs = sorted((store.artifacts_dir / name / "logs").glob("worker-*.log"))
    assert len(logs) == 2 and store.final(name) is not None
    return store


def processes(*words: str) -> list[int]:
    """Pids of live processes whose command line holds every word."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if all(w.encode() in argv for w in words):
                pids.append(int(entry.name))
    return pids


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
