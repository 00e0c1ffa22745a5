"""A team's store: a real PostgreSQL server on loopback, two worker processes on one fresh database.

Optuna's schema creation races when several processes open a fresh database at once; the sweep
creates its study before starting workers, which this test exercises on the database teams use.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sweep_cli import cli, two_worker_sweep

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    """On PATH, else Debian's newest /usr/lib/postgresql/<version>/bin (not on PATH by default)."""
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return shutil.which(name) or (debian[-1] if debian else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, loopback only), stopped and deleted afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL test: initdb/pg_ctl not found (apt-get install -y postgresql)")
    pytest.importorskip("psycopg2", reason="PostgreSQL test: the psycopg2 driver is not installed")
    run_as: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="transferlab-pg-"))
    if os.geteuid() == 0:   # PostgreSQL refuses to run as root: use its own account
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL test: running as root and there is no 'postgres' user to run the server")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run([*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_sweep_on_a_fresh_postgres_database(postgres_url, tiny_dataset, tmp_path):
    store = two_worker_sweep(postgres_url, "team", tiny_dataset, tmp_path)
    assert len(store.final("team").test["y_true"]) == 9
    assert "val_loss" in store.trial("team", 0).result.folds[0].curves
    listed = cli("results", "team", "--storage", postgres_url, "--csv").stdout.splitlines()
    assert listed[0].startswith("sweep,number,state,value") and len(listed) == 4
