"""`python -m core sweep SPEC --budget 30m` (issue 20): the spec fitted to the time on this machine."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.runs.store import RunStore

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "examples" / "recommended.yaml"


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "sweep", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def test_a_budget_that_is_no_time_is_refused_in_one_line(tmp_path):
    result = sweep(str(PRESET), "--budget", "soon", "--storage", f"sqlite:///{tmp_path / 'runs.db'}")
    assert result.returncode == 2 and "budget: 'soon' is not a time" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow      # Lite0 with its ImageNet weights: the speed measured, then a real sweep
def test_a_budgeted_sweep_runs_the_plan_and_keeps_it_in_its_spec(tiny_dataset, tmp_path):
    spec = yaml.safe_load(PRESET.read_text())
    spec["data"] |= {"dataset": str(tiny_dataset), "test_fraction": 0.25}
    spec["folds"] = 2
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    result = sweep(str(path), "--budget", "20s", "--storage", storage)
    assert result.returncode == 0, result.stderr
    assert "planned for this machine" in result.stderr and "too little time to fine-tune" in result.stderr
    store = RunStore(storage)
    kept = store.spec("recommended")
    assert kept.params.trainable_layers == 0 and kept.params.head == "linear" and kept.refit
    assert kept.search.time_limit_s == 20 and "too little time to fine-tune" in kept.search.plan
    assert store.final("recommended") is not None and store.sweep("recommended").clock is not None
    again = sweep(str(path), "--budget", "20s", "--storage", storage)     # measured again, it would differ
    assert again.returncode == 0, again.stderr
    assert "exists: it keeps the plan it was created with" in again.stderr and "planned for" not in again.stderr
