"""One owner of a sweep's creation and launch: the CLI is a front door to the same rules as the page."""
from __future__ import annotations

import subprocess
import sys

import pytest
from cli_runs import cli, write_spec

from core.runs.store import RunStore
from core.spec.sweep import SweepSpec


@pytest.fixture
def sleeper():
    """A live process whose command line reads like a driver's (`... core ...`), killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "core"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_the_cli_refuses_a_sweep_another_live_driver_runs(tiny_dataset, tmp_path, sleeper):
    """A sweep the page launched (its driver alive) is not run a second time by `python -m core sweep`."""
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    path = write_spec(tmp_path / "spec.yaml", "busy", tiny_dataset, {}, backbone="mobilenetv2", weights="none",
                      epochs=1)
    store = RunStore(storage)
    store.create_sweep(SweepSpec.from_yaml(path.read_text()))
    store.set_driver("busy", sleeper)
    done = cli("sweep", str(path), "--storage", storage, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "sweep 'busy' is already running" in done.stderr.strip().splitlines()[-1]
    assert store.trials("busy") == [] and store.sweep("busy").driver.pid == sleeper
