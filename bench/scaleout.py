"""What scale-out costs: one small sweep on the local executor, through Ray (2 CPUs), and with two worker
processes on a PostgreSQL store, each run by the real CLI (`python -m core sweep`) in a fresh store.

Prints, side by side: wall time of the whole command (data, trials, refit), the trials' own time as the
store recorded it, and the overhead per trial, (wall x workers - sum of trial times) / trials: the
worker-seconds each trial costs outside its own training (process and TensorFlow start-up per worker, the
driver's polling, the refit shared out). Ray's own start-up (a local 2-CPU runtime, joined by the CLI with
--ray-address as a team's cluster would be) is timed apart. PostgreSQL: a throwaway server on loopback
(initdb, as the tests start it).

    .venv/bin/python bench/scaleout.py                      # 4 trials x 2 folds on generated images
    .venv/bin/python bench/scaleout.py --trials 6 --epochs 4 --per-class 20
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4, help="grid points (learning rates)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--per-class", type=int, default=16, help="generated images per colour class")
    p.add_argument("--skip", nargs="*", default=[], choices=("local", "ray", "postgres"))
    return p.parse_args()


def colours(root: Path, per_class: int) -> Path:
    """Three noisy colour classes: learnable in a few epochs, so the trials are short and overhead shows."""
    for c, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            rng = np.random.default_rng(c * 1000 + i)
            pixels = np.array(colour, np.float32) + rng.normal(0, 25, size=(32, 40, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i:03d}.jpg")
    return root


def write_spec(folder: Path, dataset: Path, args: argparse.Namespace) -> Path:
    rates = [float(r) for r in np.geomspace(0.003, 0.03, args.trials).round(4)]
    spec = {"name": "scaleout", "folds": 2, "data": {"dataset": str(dataset), "test_fraction": 0.25, "seed": 1},
            "params": {"image_size": 32, "epochs": args.epochs, "batch_size": 8, "head": "dense_dropout",
                       "dense_units": [16], "dropout": [0.5], "early_stopping": 0, "reduce_lr": 0},
            "search": {"method": "grid", "space": {"learning_rate": rates}},
            "resources": {"cpus_per_trial": 1}}
    path = folder / "scaleout.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(label: str, spec: Path, storage: str, workers: int, *more: str) -> dict:
    """One sweep by the CLI in its own store; its wall time and the trials' recorded durations."""
    from core.runs.store import RunStore
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", "sweep", str(spec), "--storage", storage,
                           "--workers", str(workers), *more], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{label}: exit {done.returncode}\n{done.stderr[-3000:]}")
    trials = [t for t in RunStore(storage).trials("scaleout") if t.state.name == "COMPLETE"]
    spent = sum(t.duration_s or 0.0 for t in trials)
    return {"executor": label, "workers": workers, "trials": len(trials), "wall_s": wall, "trial_s": spent,
            "overhead_per_trial_s": (wall * workers - spent) / len(trials),
            "cv_errors": " ".join(f"{t.value:.3f}" for t in sorted(trials, key=lambda t: t.params["learning_rate"]))}


def ray_head(home: Path) -> tuple[str, float]:
    """A local 2-CPU Ray runtime in this process (token auth off, HOME of its own); its address and start time."""
    os.environ["HOME"], os.environ["RAY_AUTH_MODE"] = str(home), "disabled"
    start = time.perf_counter()
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray.get_runtime_context().gcs_address, time.perf_counter() - start


def postgres() -> tuple[str, list[str], Path]:
    """A throwaway PostgreSQL server on loopback; its URL, the command that stops it, and its folder."""
    def binary(name: str) -> str:
        found = shutil.which(name) or (sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [None])[-1]
        if not found:
            raise SystemExit(f"postgres run: {name} not found (apt-get install postgresql, or --skip postgres)")
        return found
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="transferlab-scaleout-pg-"))
    if run_as:
        shutil.chown(folder, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run([*run_as, binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, binary("pg_ctl"), "-D", str(data), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "-l",
                    str(folder / "log"), "-w", "start"], check=True, capture_output=True)
    return (f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
            [*run_as, binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], folder)


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="transferlab-scaleout-"))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home")        # caches warm once, shared by every run
    spec = write_spec(work, colours(work / "data" / "colours", args.per_class), args)
    rows, notes = [], []
    try:
        if "local" not in args.skip:
            rows.append(run("local", spec, f"sqlite:///{work / 'local.db'}", 1))
        if "ray" not in args.skip:
            address, started = ray_head(work / "ray-home")
            notes.append(f"Ray runtime start (2 CPUs, once per cluster): {started:.1f} s")
            rows.append(run("ray (2 CPUs)", spec, f"sqlite:///{work / 'ray.db'}", 2, "--executor", "ray",
                            "--ray-address", address))
        if "postgres" not in args.skip:
            url, stop, folder = postgres()
            try:
                rows.append(run("2 workers, PostgreSQL", spec, url, 2))
            finally:
                subprocess.run(stop, capture_output=True)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.trials} trials x 2 folds x {args.epochs} epochs, {3 * args.per_class} images, "
          f"{os.cpu_count()} CPUs on this machine")
    header = f"{'executor':<24}{'workers':>8}{'trials':>7}{'wall s':>9}{'trials s':>10}{'overhead/trial s':>18}  CV errors"
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['executor']:<24}{r['workers']:>8}{r['trials']:>7}{r['wall_s']:>9.1f}{r['trial_s']:>10.1f}"
              f"{r['overhead_per_trial_s']:>18.1f}  {r['cv_errors']}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
