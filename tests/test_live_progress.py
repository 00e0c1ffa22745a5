"""The Sweep page watching a real sweep: the cache pass's bar, the fold/epoch position and the time
left, read from the store while a worker process runs it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import app_data_root
from streamlit.testing.v1 import AppTest

from core.runs.store import RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")
REPO = Path(APP).parent
NAME = "watched-live"
pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with 3 x 150 images and a store, for the page (in-process) and the CLI alike."""
    monkeypatch.setenv("TRANSFERLAB_STEP_WRITE_S", "0.5")
    return app_data_root(tmp_path, monkeypatch, per_class=150)


def page_text(at: AppTest) -> str:
    return "\n".join([p.text for p in at.get("progress")] + [m.value for m in at.markdown]
                     + [c.value for c in at.caption])


def test_the_sweep_page_shows_the_cache_pass_the_position_and_the_time_left(served: Path, tmp_path: Path):
    spec = {"name": NAME, "folds": 2, "data": {"dataset": "colours", "test_fraction": 0.2},
            "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 96, "trainable_layers": 0,
                       "epochs": 40, "batch_size": 32, "early_stopping": 0, "reduce_lr": 0},
            "search": {"method": "grid", "space": {"learning_rate": [0.01, 0.003]}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    # The pages' imports load before the sweep starts: on a busy machine a first page run loading them outlasted
    # the whole cache pass, and the test never saw its bar.
    AppTest.from_file(APP, default_timeout=60).run().switch_page("views/2_Sweep.py").run()
    sweep = subprocess.Popen([sys.executable, "-m", "core", "sweep", str(tmp_path / "spec.yaml")], cwd=REPO,
                             env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 400
        while not (tmp_path / "runs.db").exists() or NAME not in RunStore().sweep_names():
            assert time.monotonic() < deadline and sweep.poll() is None, "the sweep never started"
            time.sleep(0.2)
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["sweep"] = NAME
        at.run()
        at.switch_page("views/2_Sweep.py").run()
        while sweep.poll() is None and time.monotonic() < deadline:
            assert not at.exception, [e.value for e in at.exception]
            seen.append(page_text(at))
            at.run()
        seen.append(page_text(at))
    finally:
        sweep.kill()
    text = "\n".join(seen)
    assert "backbone activations:" in text and "images/s" in text, text[-3000:]
    assert "fold 1 of 2, epoch" in text and "fold 2 of 2, epoch" in text
    positions = {line for line in text.splitlines() if "of 2, epoch" in line}
    assert len(positions) >= 3, positions                 # the position moved while we watched
    lefts = {line.split("about ")[1] for line in text.splitlines() if "of 2, epoch" in line and "about " in line}
    assert len(lefts - {"– left"}) >= 2, lefts                # a trial's time left, estimated and changing
    assert any("trials · about" in line for line in text.splitlines()), "no time left for the sweep"
    assert "took " in seen[-1], seen[-1]                       # finished: its total time
