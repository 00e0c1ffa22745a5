"""A throwaway PostgreSQL cluster for the tests that need a team's store (`postgres_url`, a fixture conftest
makes every test's)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import unused_port


def _pg_bin(name: str) -> str | None:
    """On PATH, else Debian's newest /usr/lib/postgresql/<version>/bin (not on PATH by default)."""
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return shutil.which(name) or (debian[-1] if debian else None)


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
    data, port = folder / "data", unused_port()
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
