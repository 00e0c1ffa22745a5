"""Deleting from the Sweep page while the sweep runs: the refusal stays on screen over the live panel's
polls (each one redraws the page) until it is dismissed or the sweep's status changes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from apptest import button, tiny_spec
from test_app_faults import own_store, watch  # noqa: F401  (the fixture and the page opener)


def refusals(at) -> list[str]:
    return [e.value for e in at.error if "stop it before deleting it" in e.value]


def test_a_refused_delete_outlasts_the_next_poll(data_root: Path, own_store) -> None:  # noqa: F811
    own_store.create_sweep(tiny_spec("busy-page", data_root / "colours"))
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "core"])
    try:
        own_store.set_driver("busy-page", driver.pid)
        own_store.set_status("busy-page", "running")
        at = watch("busy-page")
        button(at, "Delete").click().run()
        button(at, "Delete for good").click().run()
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        at.run()                                    # the next poll
        assert not at.exception, at.exception
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        at.run()
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        button(at, "Dismiss").click().run()
        assert refusals(at) == [], [e.value for e in at.error]
        assert "busy-page" in own_store.sweep_names()
    finally:
        driver.kill()
        driver.wait()


def test_a_kept_refusal_is_forgotten_when_the_sweep_changes(data_root: Path, own_store) -> None:  # noqa: F811
    own_store.create_sweep(tiny_spec("stopping", data_root / "colours"))
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "core"])
    try:
        own_store.set_driver("stopping", driver.pid)
        own_store.set_status("stopping", "running")
        at = watch("stopping")
        button(at, "Delete").click().run()
        button(at, "Delete for good").click().run()
        assert len(refusals(at)) == 1, [e.value for e in at.error]
    finally:
        driver.kill()
        driver.wait()
    own_store.set_status("stopping", "stopped")         # its driver stopped it
    at.run()
    assert refusals(at) == [], [e.value for e in at.error]
