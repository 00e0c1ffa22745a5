"""One artifact store for every process of a sweep: a worker on one machine and the driver on another
(two homes standing for two machines) share the trials' files through it, a folder or S3."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.runs.store import RunStore
from core.spec.sweep import SweepSpec

REPO = Path(__file__).resolve().parents[1]


def core(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def home(folder: Path, storage: str, artifacts: str, **extra: str) -> dict[str, str]:
    """The environment of one machine: its own home (so its own cache and runs folder), the shared stores."""
    return os.environ | {"TRANSFERLAB_HOME": str(folder), "TRANSFERLAB_STORAGE": storage,
                         "TRANSFERLAB_ARTIFACTS": artifacts, **extra}


def split_sweep(storage: str, artifacts: str, dataset: Path) -> SweepSpec:
    """Two configurations whose fold models are kept; without a refit the final model is the best
    trial's own fold ensemble, and its train evaluation the trial's out-of-fold scores."""
    spec = SweepSpec.from_dict({
        "name": "split", "folds": 2, "ensemble": True, "refit": False,
        "data": {"dataset": str(dataset), "test_fraction": 0.25, "seed": 1},
        "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32, "epochs": 2,
                   "batch_size": 8, "early_stopping": 0, "reduce_lr": 0},
        "search": {"method": "grid", "space": {"learning_rate": [0.01, 0.003]}}})
    RunStore(storage, artifacts=artifacts).create_sweep(spec)
    return spec


def run_on_two_machines(tmp_path: Path, dataset: Path, artifacts: str, **extra: str) -> None:
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    split_sweep(storage, artifacts, dataset)
    driver = home(tmp_path / "home-a", storage, artifacts, **extra)
    worker = home(tmp_path / "home-b", storage, artifacts, **extra)

    ran = core(worker, "worker", "--sweep", "split")
    assert "2 trial(s) run" in ran.stderr
    finished = core(driver, "resume", "split")              # nothing left to run: the driver makes the final model
    said = finished.stdout + finished.stderr
    assert "training them again" not in said, said                  # the worker's fold models, not new ones
    assert "refitting trial" not in said, said                       # nothing trained on A

    store = RunStore(storage, artifacts=artifacts)
    final = store.final("split")
    best = min((t for t in store.trials("split")), key=lambda t: t.value)
    assert final.trial == best.number and final.epochs == 0 and final.chosen == "ensemble"
    oof = store.oof("split", best.number)
    assert oof is not None and final.train["y_true"] == oof.labels.tolist() and len(final.train["y_true"]) == 27
    assert np.allclose(final.train["scores"], oof.scores)              # the worker's own out-of-fold scores
    assert not (tmp_path / "home-b" / "runs" / "artifacts" / "split").exists()    # nothing only on B's disk

    suspects = json.loads(core(driver, "suspects", "split", "--json").stdout)
    assert len(suspects) == 27 and {s["given"] for s in suspects} == {"red", "green", "blue"}

    local = RunStore(storage, artifacts=artifacts).final("split", local=True)
    assert Path(local.model_path).is_file() and Path(local.model_path).name == "best-ensemble.keras"


@pytest.mark.slow          # three processes with TensorFlow: about a minute
def test_a_worker_with_another_home_shares_its_files_through_a_shared_folder(tiny_dataset, tmp_path):
    run_on_two_machines(tmp_path, tiny_dataset, str(tmp_path / "shared-artifacts"))


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 HTTP server (moto) on loopback with one empty bucket; the AWS variables that reach it."""
    import boto3
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="sweeps")
    yield env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.slow          # three processes with TensorFlow: about a minute
def test_a_worker_with_another_home_shares_its_files_through_s3(tiny_dataset, tmp_path, s3_server):
    import boto3
    run_on_two_machines(tmp_path, tiny_dataset, "s3://sweeps/team", **s3_server)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="sweeps")["Contents"]]
    assert keys and all(k.startswith("team/") for k in keys)
