"""The engine's acceptance run on real photos: a cross-validated sweep of a real pretrained CNN.

Frozen EfficientNet-Lite0 (ImageNet weights shipped offline) + linear head on flowers5,
3-fold CV, 2 configurations, then the best refit and tested on the held-out 15 %.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lite0_sweep_on_flowers5_reaches_88_percent(flowers5, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    env = os.environ | {"TRANSFERLAB_DATA_ROOTS": str(flowers5.parent)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "core", "sweep", str(REPO / "examples" / "flowers5-lite0.yaml"),
                    "--storage", storage], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    minutes = (time.monotonic() - started) / 60
    out = subprocess.run([sys.executable, "-m", "core", "results", "flowers5-lite0", "--storage", storage,
                          "--json"], cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    assert [t["state"] for t in report["trials"]] == ["COMPLETE", "COMPLETE"]
    final = report["final"]
    print(f"\nflowers5 lite0 sweep: {minutes:.1f} min, CV errors "
          f"{[round(t['value'], 4) for t in report['trials']]}, test accuracy {final['test_accuracy']:.4f}")
    assert final["test_summary"]["accuracy"] >= 0.88
