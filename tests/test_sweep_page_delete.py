"""Deleting from the Sweep page while the sweep runs: the refusal stays on screen over the live panel's
polls (each one redraws the page) until it is dismissed or the sweep's status changes."""
from __future__ import annotations

from pathlib import Path

from apptest import button
from apptest import delete_on_page, driven, watch


def refusals(at) -> list[str]:
    return [e.value for e in at.error if "stop it before deleting it" in e.value]


def test_a_refused_delete_outlasts_the_next_poll(data_root: Path, own_store) -> None:  # noqa: F811
    with driven(own_store, "busy-page", data_root):
        at = watch("busy-page")
        delete_on_page(at)
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        at.run()                                    # the next poll
        assert not at.exception, at.exception
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        at.run()
        assert len(refusals(at)) == 1, [e.value for e in at.error]
        button(at, "Dismiss").click().run()
        assert refusals(at) == [], [e.value for e in at.error]
        assert "busy-page" in own_store.sweep_names()


def test_a_kept_refusal_is_forgotten_when_the_sweep_changes(data_root: Path, own_store) -> None:  # noqa: F811
    with driven(own_store, "stopping", data_root):
        at = watch("stopping")
        delete_on_page(at)
        assert len(refusals(at)) == 1, [e.value for e in at.error]
    own_store.set_status("stopping", "stopped")         # its driver stopped it
    at.run()
    assert refusals(at) == [], [e.value for e in at.error]
