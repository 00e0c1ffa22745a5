"""Each local worker process gets its own GPU (round robin) and its share of the CPUs, decided by one pure
function and handed to the process it starts."""
from __future__ import annotations

import json
import sys
from contextlib import ExitStack

from core.runs.store import RunStore
from core.search.executors import start_worker
from core.search.placement import WorkerShare, local_shares, visible_gpus, worker_shares


def test_three_workers_on_two_declared_gpus_take_turns_and_split_the_cpus():
    shares = worker_shares(3, ["0", "1"], cpus=16)
    assert [s.gpu for s in shares] == ["0", "1", "0"]
    assert [s.cpus for s in shares] == [5, 5, 5]
    assert shares[2].environment() == {"TRANSFERLAB_CPUS": "5", "CUDA_VISIBLE_DEVICES": "0"}
    assert [s.cpus for s in worker_shares(3, [], cpus=2)] == [1, 1, 1]            # never below one thread
    assert "CUDA_VISIBLE_DEVICES" not in worker_shares(2, [], cpus=2)[1].environment()   # no GPU: left alone


def test_declared_gpus_beat_the_visible_ones():
    assert visible_gpus({"TRANSFERLAB_GPUS": "0, 1", "CUDA_VISIBLE_DEVICES": "3"}) == ["0", "1"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"TRANSFERLAB_GPUS": ""}) == [] == visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"})


PROBE = ("import json, os; from core.data.images import usable_cpus; "
         "print(json.dumps([os.environ.get('CUDA_VISIBLE_DEVICES'), usable_cpus()]))")


def test_a_launched_worker_process_sees_its_gpu_and_cpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_GPUS", "0,1")
    monkeypatch.setenv("TRANSFERLAB_CPUS", "6")         # the machine's CPUs, as declared to the driver
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    with ExitStack() as files:
        started = [start_worker(store, share, [sys.executable, "-c", PROBE], files.enter_context(open(log, "wb")))
                   for share, log in zip(local_shares(3), logs)]
        assert [p.wait(timeout=60) for p in started] == [0, 0, 0]
    seen = [json.loads(log.read_text()) for log in logs]
    assert seen == [["0", 2], ["1", 2], ["0", 2]]
    assert WorkerShare(0, "1", 2).describe() == "worker 0: GPU 1, 2 CPU threads"
