"""CLI error paths: one clear line on stderr, exit code 2, no traceback, no TensorFlow for --help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def storage(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_spec_file(capsys, tmp_path, storage):
    code, _, err = run_cli(capsys, "sweep", str(tmp_path / "nope.yaml"), "--storage", storage)
    assert code == 2 and "nope.yaml does not exist" in err


def test_bad_spec_field_is_named(capsys, tmp_path, storage):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ndata: {dataset: colours}\nparams: {optimizer: adamw}\n")
    code, _, err = run_cli(capsys, "sweep", str(spec), "--storage", storage)
    assert code == 2 and err.startswith("error: params.optimizer: 'adamw' is not one of")


def test_dataset_outside_the_data_roots(capsys, tmp_path, storage, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "data"))
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\ndata: {dataset: ../../etc}\n")
    code, _, err = run_cli(capsys, "sweep", str(spec), "--storage", storage)
    assert code == 2 and "error:" in err


def test_unknown_sweep(capsys, storage):
    for command in (["results", "ghost"], ["resume", "ghost"], ["export", "ghost", "out"], ["stop", "ghost"]):
        code, _, err = run_cli(capsys, *command, "--storage", storage)
        assert code == 2 and "no sweep named 'ghost'" in err, command


def test_missing_model_and_missing_dataset(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "m.keras"), "x.jpg")
    assert code == 2 and "m.keras does not exist" in err
    code, _, err = run_cli(capsys, "scan", str(tmp_path / "no-such-folder"))
    assert code == 2 and "no-such-folder" in err


def test_help_is_fast_and_never_imports_tensorflow():
    probe = ("import sys, contextlib, io\nfrom core.cli import build_parser\n"
             "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
             "    build_parser().parse_args(['--help'])\n"
             "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_usage_errors_exit_2_without_traceback():
    out = subprocess.run([sys.executable, "-m", "core", "results"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "required" in out.stderr
