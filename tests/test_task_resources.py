"""A worker inside a cluster engine's task uses the CPUs the task was given, not the whole node's."""
from __future__ import annotations

import os
import subprocess
import sys

from cli_runs import REPO

from core.data.images import imap_in_processes


def _pid(_: int) -> int:
    return os.getpid()


def test_the_decode_pool_takes_the_task_cpus(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CPUS", "1")
    assert set(imap_in_processes(_pid, list(range(400)), chunk=4)) == {os.getpid()}   # no pool of node size


def test_tensorflow_threads_take_the_task_cpus():
    probe = ("from core.search.worker import use_task_cpus; use_task_cpus(); import tensorflow as tf; "
             "print(tf.config.threading.get_intra_op_parallelism_threads(), "
             "tf.config.threading.get_inter_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"TRANSFERLAB_CPUS": "1"})
    assert done.stdout.split() == ["1", "1"], done.stderr[-2000:]
