"""optuna-dashboard as a read-only viewer of a finished sweep's store: every complete trial shows its
per-epoch curve, and no attribute is cut at the dashboard's 1,024 characters."""
from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import pytest

from core.runs.store import RunStore
from core.search.refit import finalize
from core.search.worker import run_worker
from core.spec.sweep import SweepSpec

DASHBOARD_CUT = 1024          # optuna_dashboard._serializer.MAX_ATTR_LENGTH


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def dashboard(store: RunStore) -> Iterator[str]:
    """optuna-dashboard's own WSGI app on the store and its artifact store, served on 127.0.0.1."""
    from optuna_dashboard import wsgi
    server = make_server("127.0.0.1", 0, wsgi(store.storage, artifact_store=store.artifacts.store),
                         handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def finished(tiny_dataset, tmp_path) -> RunStore:
    """Two configurations, two folds of three epochs each, no pruning, then the refit."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({
        "name": "viewed", "folds": 2, "data": {"dataset": str(tiny_dataset), "test_fraction": 0.25},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32, "epochs": 3,
                   "batch_size": 8, "early_stopping": 0, "reduce_lr": 0},
        "search": {"method": "grid", "space": {"learning_rate": [0.01, 0.003]}}}))
    run_worker(store, "viewed")
    finalize(store, "viewed")
    return store


@pytest.mark.slow          # a sweep, its refit and a dashboard server: about 25 s
def test_the_dashboard_shows_every_epoch_and_no_cut_attribute(finished):
    with dashboard(finished) as base:
        studies = get(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["viewed"]
        study = get(f"{base}/api/studies/{studies[0]['study_id']}")
    complete = [t for t in study["trials"] if t["state"] == "Complete"]
    assert len(complete) == 2
    for shown in complete:
        record = finished.trial("viewed", shown["number"])
        folds = [1.0 - np.asarray(f.curves["val_accuracy"]) for f in record.result.folds]
        steps = {v["step"]: v["value"] for v in shown["intermediate_values"]}
        assert sorted(steps) == [0, 1, 2]                           # one per epoch, not per fold and epoch
        assert np.allclose([steps[e] for e in range(3)], np.mean(folds, axis=0))   # the folds' average
    attributes = study["user_attrs"] + [a for t in study["trials"] for a in t["user_attrs"]]
    assert {a["key"] for a in study["user_attrs"]} >= {"spec", "final", "status"}
    too_long = {a["key"]: len(a["value"]) for a in attributes if len(a["value"]) >= DASHBOARD_CUT}
    assert not too_long, f"attributes the dashboard cuts: {too_long}"
    for a in attributes:
        json.loads(a["value"]) if a["value"][:1] in "{[" else None    # whole JSON, never a cut one
    final = finished.final("viewed", local=True)
    assert final.test["y_true"] and final.train["y_true"]           # the records still read in full
