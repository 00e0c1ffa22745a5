"""A team's store: a real PostgreSQL server on loopback, two worker processes on one fresh database.

Optuna's schema creation races when several processes open a fresh database at once; the sweep
creates its study before starting workers, which this test exercises on the database teams use.
"""
from __future__ import annotations

import pytest
from cli_runs import cli, two_worker_sweep

pytestmark = pytest.mark.slow


def test_two_workers_share_a_sweep_on_a_fresh_postgres_database(postgres_url, tiny_dataset, tmp_path):
    store = two_worker_sweep(postgres_url, "team", tiny_dataset, tmp_path)
    assert len(store.final("team").test["y_true"]) == 9
    assert "val_loss" in store.trial("team", 0).result.folds[0].curves
    listed = cli("results", "team", "--storage", postgres_url, "--csv").stdout.splitlines()
    assert listed[0].startswith("sweep,number,state,value") and len(listed) == 4
