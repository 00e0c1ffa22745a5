"""Whole sweeps through the real CLI: run, results, predict, export, and resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runs import REPO, cli, two_worker_sweep, write_spec

from core.runs.store import RunStore


def test_sweep_results_predict_export(tiny_dataset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "colours", tiny_dataset,
                      {"head": ["linear", "dense_dropout"]}, dense_units=[16, 8], dropout=[0.5])
    run = cli("sweep", str(spec), "--storage", storage)
    assert "test accuracy" in run.stdout

    report = json.loads(cli("results", "colours", "--storage", storage, "--json").stdout)
    assert report["status"] == "done"
    assert sorted(t["head"] for t in report["trials"]) == ["dense_dropout", "linear"]
    assert all(t["state"] == "COMPLETE" and 0 <= t["value"] <= 1 for t in report["trials"])
    final = report["final"]
    assert final["trial"] in (0, 1) and final["test_summary"]["accuracy"] == pytest.approx(final["test_accuracy"])
    assert final["test_accuracy"] >= 0.8     # three colours: easy for ImageNet features
    low, high = final["test_summary"]["accuracy_interval"]      # 95% Wilson, on the 9 test images
    assert low <= final["test_accuracy"] <= high and high - low > 0.2
    text = cli("results", "colours", "--storage", storage).stdout
    assert f"(95% interval {low:.4f}-{high:.4f}, 9 images)" in text

    record = RunStore(storage).final("colours")
    assert len(record.test["y_true"]) == 9 and len(record.train["y_true"]) == 27
    assert "val_loss" in RunStore(storage).trial("colours", 0).result.folds[0].curves
    assert RunStore(storage).spec("colours").params.dense_units == (16, 8)      # a list field from YAML

    csv = cli("results", "colours", "--storage", storage, "--csv").stdout
    assert csv.splitlines()[0].startswith("sweep,number,state,value")

    image = next((tiny_dataset / "red").iterdir())
    broken = tmp_path / "notes.jpg"
    broken.write_text("not an image")
    predicted = cli("predict", final["model_path"], str(image), str(broken), "--json", check=False)
    assert predicted.returncode == 1
    rows = json.loads(predicted.stdout)
    assert rows[0]["top"][0]["class"] == "red" and len(rows[0]["top"]) == 3
    assert "error" in rows[1] and "not an image" in rows[1]["error"]

    exported = tmp_path / "export" / "best.keras"
    cli("export", "colours", "--storage", storage, str(exported))
    again = json.loads(cli("predict", str(exported), str(image), "--json", "--top-k", "1").stdout)
    assert again[0]["top"][0]["class"] == "red"

    # Re-running a finished sweep reruns nothing.
    cli("sweep", str(spec), "--storage", storage)
    assert len(RunStore(storage).trials("colours")) == 2


@pytest.mark.slow          # worker processes killed and resumed: real sweeps, most of a minute
def test_sigkill_mid_sweep_then_resume_reruns_nothing_finished(tiny_dataset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "killed", tiny_dataset,
                      {"learning_rate": [0.003, 0.01, 0.03]}, epochs=25)
    env = os.environ | {"TRANSFERLAB_HEARTBEAT_S": "1", "TRANSFERLAB_GRACE_S": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(storage)
    deadline = time.monotonic() + 300
    states: list[str] = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            states = [t.state.name for t in store.trials("killed")]
        except Exception:          # the study may not exist yet
            states = []
        if states.count("COMPLETE") >= 1 and "RUNNING" in states:
            break
        time.sleep(0.5)
    assert proc.poll() is None, f"the sweep ended before it could be killed: {states}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.params["learning_rate"], t.value) for t in store.trials("killed")
              if t.state.name == "COMPLETE"}
    assert before

    cli("sweep", str(spec), "--storage", storage, env=env)
    trials = store.trials("killed")
    after = {t.number: (t.params["learning_rate"], t.value) for t in trials if t.state.name == "COMPLETE"}
    assert {n: after[n] for n in before} == before                    # finished trials kept as they were
    done_rates = sorted(rate for rate, _ in after.values())
    assert sorted(set(done_rates)) == [0.003, 0.01, 0.03]             # every grid point finished
    for rate, _ in before.values():
        assert done_rates.count(rate) == 1, "a trial finished before the kill was run again"
    assert store.final("killed") is not None


@pytest.mark.slow
def test_two_worker_processes_share_one_sweep(tiny_dataset, tmp_path):
    two_worker_sweep(f"sqlite:///{tmp_path / 'runs.db'}", "pair", tiny_dataset, tmp_path)


def test_a_launched_driver_gets_the_store_url_by_environment_not_command_line(tiny_dataset, tmp_path):
    """`ps` shows every user a process's command line: a PostgreSQL password must never be on it."""
    from core.search import lifecycle
    from core.spec.sweep import SweepSpec
    store = RunStore(f"sqlite:///{tmp_path / 'secret-runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = SweepSpec.from_yaml(write_spec(tmp_path / "spec.yaml", "detached", tiny_dataset, {},
                                          backbone="mobilenetv2", weights="none", epochs=1).read_text())
    store.create_sweep(spec)
    pid = lifecycle.launch_detached(store, "detached")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert "secret-runs" not in cmdline and "--storage" not in cmdline, cmdline
    deadline = time.monotonic() + 300
    while store.status("detached") != "done":     # the driver found the store through its environment
        assert time.monotonic() < deadline, (store.artifacts_dir / "detached" / "driver.log").read_text()[-2000:]
        time.sleep(1)
    assert store.final("detached") is not None


def test_a_sweep_that_cannot_run_exits_1_with_its_reason(tiny_dataset, tmp_path):
    """ImageNet weights missing (offline, none cached): no trial can run; the last line says why, exit 1."""
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = write_spec(tmp_path / "spec.yaml", "no-weights", tiny_dataset, {}, backbone="resnet50", epochs=1)
    env = os.environ | {"KERAS_HOME": str(tmp_path / "keras"), "TRANSFERLAB_WEIGHTS_DOWNLOAD": "off"}
    run = cli("sweep", str(spec), "--storage", storage, env=env, check=False)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1, run.stderr[-3000:]
    assert last.startswith("sweep no-weights failed: ") and "weights: none" in last, last
    report = json.loads(cli("results", "no-weights", "--storage", storage, "--json").stdout)
    assert report["status"] == "failed" and report["failure"] in last


def test_the_cli_downloads_the_weights_a_sweep_needs_before_its_first_trial(tiny_dataset, tmp_path):
    """From a loopback mirror, with a bar on stderr; a file that is no backbone's weights then fails the
    trials, and the sweep, with the reason."""
    import h5py
    import numpy as np
    from loopback import serve_folder

    site = tmp_path / "site"
    site.mkdir()
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    with h5py.File(site / name, "w") as f:
        f.create_dataset("kernel", data=np.zeros((8, 4)))
    spec = write_spec(tmp_path / "spec.yaml", "fetched", tiny_dataset, {}, backbone="mobilenetv2",
                      weights="imagenet", image_size=96, epochs=1)
    keras_home = tmp_path / "keras"
    with serve_folder(site) as mirror:
        env = os.environ | {"KERAS_HOME": str(keras_home), "TRANSFERLAB_WEIGHTS_DOWNLOAD": "on",
                            "TRANSFERLAB_WEIGHTS_MIRROR": mirror.url}
        run = cli("sweep", str(spec), "--storage", f"sqlite:///{tmp_path / 'runs.db'}", env=env, check=False)
    assert mirror.requests == [f"/{name}"]
    assert (keras_home / "models" / name).is_file()
    assert "weights mobilenetv2" in run.stderr
    assert run.returncode == 1 and "sweep fetched failed" in run.stderr
