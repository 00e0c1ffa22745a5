"""CLI error paths: one clear line on stderr, exit code 2, no traceback, no TensorFlow for --help."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_image

from core.cli import main
from core.runs.records import FinalModel
from core.runs.store import RunStore
from core.spec.sweep import DataSpec, SweepSpec, TrialParams

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
    for command in (["results", "ghost"], ["resume", "ghost"], ["export", "ghost", "out"], ["stop", "ghost"],
                    ["delete", "ghost", "--yes"]):
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


# --- issue 8: names, stores, files and numbers the CLI is given ----------------------------------------

def usage_error(capsys, *argv: str) -> str:
    """argparse's refusal: exit 2 and its message on stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


def spec_file(folder: Path, dataset: Path, name: str = "tiny", **params) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SweepSpec(name=name, data=DataSpec(dataset=str(dataset)),
                              params=TrialParams(image_size=32, epochs=1, **params)).to_yaml())
    return path


def one_error_line(code: int, err: str, *expected: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err


def test_name_option_follows_the_sweep_name_rule(capsys, tmp_path, storage, tiny_dataset):
    err = usage_error(capsys, "sweep", str(spec_file(tmp_path, tiny_dataset)), "--name", "../bad name",
                      "--storage", storage)
    assert "--name" in err and "'../bad name' is not a valid sweep name" in err
    assert RunStore(storage).sweep_names() == []


@pytest.mark.parametrize("url, reason", [
    ("not-a-url", "Could not parse"),
    ("nosuchdb://host/db", "nosuchdb"),
    ("postgresql+psycopg2://someone:s3cret@127.0.0.1:1/runs", "127.0.0.1"),
])
def test_a_store_url_that_cannot_serve_is_one_line(capsys, url, reason):
    code, _, err = run_cli(capsys, "results", "anything", "--storage", url)
    one_error_line(code, err, "run store", reason)
    assert "s3cret" not in err


def test_a_read_only_store_is_one_line(capsys, tmp_path, tiny_dataset, monkeypatch):
    RunStore(f"sqlite:///{tmp_path / 'runs.db'}").sweep_names()         # a store that exists, then read-only
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "sweep", str(spec_file(tmp_path, tiny_dataset)),
                           "--storage", f"sqlite:///file:{tmp_path / 'runs.db'}?mode=ro&uri=true")
    one_error_line(code, err, "run store", "readonly")


def test_spec_file_that_is_not_utf8(capsys, tmp_path, storage):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: café\ndata: {dataset: colours}\n".encode("latin-1"))
    code, _, err = run_cli(capsys, "sweep", str(spec), "--storage", storage)
    one_error_line(code, err, "not UTF-8 text")


@pytest.mark.parametrize("variable, folder", [("TRANSFERLAB_CACHE", "cache"),
                                              ("TRANSFERLAB_HOME", "artifacts")])
def test_unwritable_cache_or_artifacts_folder_stops_before_the_sweep(capsys, tmp_path, storage, tiny_dataset,
                                                                    monkeypatch, variable, folder):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))      # writable, unless the culprit
    monkeypatch.setenv(variable, str(blocker / "inside"))
    code, _, err = run_cli(capsys, "sweep", str(spec_file(tmp_path, tiny_dataset)), "--storage", storage)
    one_error_line(code, err, f"{folder} folder", str(blocker))
    assert RunStore(storage).sweep_names() == []


@pytest.mark.parametrize("argv, option", [
    (["predict", "m.keras", "a.jpg", "--top-k", "0"], "--top-k"),
    (["predict", "m.keras", "a.jpg", "--top-k", "-2"], "--top-k"),
    (["sweep", "s.yaml", "--workers", "0"], "--workers"),
    (["resume", "x", "--workers", "-1"], "--workers"),
    (["resume", "x", "--workers", "100000"], "--workers"),
    (["resume", "x", "--workers", "two"], "--workers"),
])
def test_numbers_out_of_range_are_usage_errors(capsys, argv, option):
    err = usage_error(capsys, *argv)
    assert f"argument {option}:" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A real two-class Transfer Lab model file (with its card), small enough to build in a second."""
    import keras

    from core.inference.model_card import save_model
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.keras", classes=["dark", "light"],
                      image_size=32)


def test_predict_reports_a_folder_as_one_error_and_goes_on(capsys, tmp_path, tiny_model):
    image = tmp_path / "red.png"
    make_image((200, 40, 40), seed=1).save(image)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, out, err = run_cli(capsys, "predict", str(tiny_model), str(image), str(folder), str(image))
    lines = out.splitlines()
    assert code == 1 and len(lines) == 3, (out, err)
    assert lines[0] == lines[2] and lines[0].startswith(f"{image}: ") and "error" not in lines[0]
    assert lines[1].startswith(f"{folder}: error: ") and "folder" in lines[1]


@pytest.fixture
def finished(storage, tmp_path, tiny_model) -> RunStore:
    """A sweep whose final model is `tiny_model`, as a refit leaves it."""
    store = RunStore(storage, artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec(name="done", data=DataSpec(dataset="colours")))
    store.set_final("done", FinalModel(trial=0, cv_error=0.1, params={}, epochs=1, model_path=str(tiny_model),
                                       test={}, train={}, test_accuracy=0.9, created="now"))
    return store


@pytest.mark.parametrize("fmt, target", [("keras", "x.keras"), ("keras", "folder"), ("savedmodel", "folder")])
def test_export_into_an_invalid_path_is_one_line(capsys, tmp_path, finished, fmt, target):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    out = blocker / target
    code, _, err = run_cli(capsys, "export", "done", "--format", fmt, str(out), "--storage", finished.url)
    one_error_line(code, err, "cannot export", str(blocker))


def test_delete_removes_the_sweep_and_its_artifacts(capsys, storage, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path))
    store = RunStore(storage)
    for name in ("keep", "gone"):
        store.create_sweep(SweepSpec(name=name, data=DataSpec(dataset="colours")))
        (store.local_folder(name) / "best.keras").write_text("model")
    code, out, _ = run_cli(capsys, "delete", "gone", "--yes", "--storage", storage)
    assert code == 0 and "deleted sweep 'gone'" in out
    assert RunStore(storage).sweep_names() == ["keep"]
    assert not (store.artifacts_dir / "gone").exists()
    assert (store.artifacts_dir / "keep" / "best.keras").exists()
    code, _, err = run_cli(capsys, "delete", "gone", "--yes", "--storage", storage)
    one_error_line(code, err, "no sweep named 'gone'")


@pytest.mark.parametrize("answer, kept", [("n\n", True), ("", True), ("yes\n", False)])
def test_delete_asks_first_without_yes(storage, answer, kept):
    RunStore(storage).create_sweep(SweepSpec(name="asked", data=DataSpec(dataset="colours")))
    out = subprocess.run([sys.executable, "-m", "core", "delete", "asked", "--storage", storage], cwd=REPO,
                         input=answer, capture_output=True, text=True, timeout=120)
    assert "delete sweep 'asked'" in out.stdout and "Traceback" not in out.stderr
    still_there = RunStore(storage).sweep_names() == ["asked"]
    assert (out.returncode, still_there) == ((1, True) if kept else (0, False))


def test_delete_refuses_a_running_sweep(capsys, storage):
    store = RunStore(storage)
    store.create_sweep(SweepSpec(name="busy", data=DataSpec(dataset="colours")))
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "core"])
    try:
        store.set_driver("busy", driver.pid)         # a live process named like a driver, on this machine
        code, _, err = run_cli(capsys, "delete", "busy", "--yes", "--storage", storage)
    finally:
        driver.kill()
        driver.wait()
    one_error_line(code, err, "'busy' is running")
    assert store.sweep_names() == ["busy"]


def test_a_failed_sweep_shows_its_reason(capsys, storage):
    store = RunStore(storage)
    for name in ("fine", "broken"):
        store.create_sweep(SweepSpec(name=name, data=DataSpec(dataset="colours")))
    store.set_failed("broken", "class 'cat' has one image: at least 2 needed")
    code, out, _ = run_cli(capsys, "list", "--storage", storage)
    assert code == 0 and "fine" in out
    assert "sweep broken failed: class 'cat' has one image: at least 2 needed" in out
    code, out, err = run_cli(capsys, "results", "broken", "--storage", storage)
    assert code == 0 and "sweep broken failed: class 'cat' has one image" in out + err
    code, out, _ = run_cli(capsys, "results", "broken", "--json", "--storage", storage)
    report = json.loads(out)
    assert (report["status"], report["failure"]) == ("failed", "class 'cat' has one image: at least 2 needed")
